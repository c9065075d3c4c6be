//! Static proof that a rendered bootstrap script cannot run what the spec put into it.
//! Shared by the `injection` and `props` tests.
//!
//! [`lex`] is a small POSIX-sh lexer that knows exactly the constructs the template uses:
//! single and double quotes, backslashes, `$(...)`/`$((...))`, comments. It fails on
//! backtick substitution and here-documents outside quotes, which the template never uses,
//! so that a template change cannot slip past it. It records which bytes are inside single
//! quotes (where the shell expands nothing) and every word made only of single-quoted
//! segments, backslash escapes and plain characters: the shape `shell_quote` produces.
//! [`assert_inert`] then checks a script: `dash -n` and `bash -n` parse it; every marker
//! (the canary name) sits inside single quotes; and dash, running `printf '%s\0'` over every
//! quoted word in an empty directory, prints what the lexer decoded, byte for byte, and
//! creates no file there (nor the absolute canary).

use std::io::Write as _;
use std::ops::Range;
use std::process::{Command, Stdio};

/// The file every adversarial payload tries to create, relative to the working directory.
pub const CANARY: &str = "meshboot-canary";
/// The absolute canary a few payloads aim at.
pub const ABSOLUTE_CANARY: &str = "/tmp/meshboot-canary";

#[derive(Debug)]
pub struct Lexed {
    /// Per byte of the script: inside single quotes.
    pub single_quoted: Vec<bool>,
    /// Top-level words that hold a single-quoted segment and expand nothing: their byte
    /// range in the script and the value the shell gives them.
    pub words: Vec<(Range<usize>, Vec<u8>)>,
}

#[derive(Clone, Copy, PartialEq)]
enum Ctx {
    Top,
    /// `$(`...`)`, with the depth of plain parentheses inside it.
    Sub(usize),
    Double,
}

struct Word {
    start: usize,
    pure: bool,
    has_single: bool,
    value: Vec<u8>,
}

/// Lexes `script`; `Err` names a construct this lexer does not model.
pub fn lex(script: &str) -> Result<Lexed, String> {
    let b = script.as_bytes();
    let mut single_quoted = vec![false; b.len()];
    let mut words = Vec::new();
    let mut stack = vec![Ctx::Top];
    let mut word: Option<Word> = None;
    let mut i = 0;
    let line_of = |i: usize| script[..i].matches('\n').count() + 1;
    while i < b.len() {
        let c = b[i];
        let ctx = *stack.last().unwrap_or(&Ctx::Top);
        match ctx {
            Ctx::Top | Ctx::Sub(_) => {
                let top = stack.len() == 1;
                if matches!(
                    c,
                    b' ' | b'\t' | b'\n' | b';' | b'&' | b'|' | b'<' | b'>' | b'(' | b')'
                ) {
                    if let Some(w) = word.take()
                        && top
                        && w.pure
                        && w.has_single
                    {
                        words.push((w.start..i, w.value));
                    }
                    if c == b'<' && b.get(i + 1) == Some(&b'<') {
                        return Err(format!("a here-document at line {}", line_of(i)));
                    }
                    if let Ctx::Sub(depth) = ctx {
                        if c == b'(' {
                            *stack.last_mut().expect("ctx") = Ctx::Sub(depth + 1);
                        } else if c == b')' {
                            if depth == 0 {
                                stack.pop();
                            } else {
                                *stack.last_mut().expect("ctx") = Ctx::Sub(depth - 1);
                            }
                        }
                    }
                    i += 1;
                    continue;
                }
                if c == b'#' && word.is_none() {
                    while i < b.len() && b[i] != b'\n' {
                        i += 1;
                    }
                    continue;
                }
                let w = word.get_or_insert(Word {
                    start: i,
                    pure: true,
                    has_single: false,
                    value: Vec::new(),
                });
                match c {
                    b'\'' => {
                        let end = b[i + 1..]
                            .iter()
                            .position(|&x| x == b'\'')
                            .map(|p| i + 1 + p)
                            .ok_or_else(|| format!("an unclosed ' at line {}", line_of(i)))?;
                        single_quoted[i + 1..end].iter_mut().for_each(|q| *q = true);
                        w.value.extend_from_slice(&b[i + 1..end]);
                        w.has_single = true;
                        i = end + 1;
                    }
                    b'"' => {
                        w.pure = false;
                        stack.push(Ctx::Double);
                        i += 1;
                    }
                    b'\\' => {
                        match b.get(i + 1) {
                            Some(b'\n') | None => {}
                            Some(&x) => w.value.push(x),
                        }
                        i += 2;
                    }
                    b'$' => {
                        w.pure = false;
                        if b.get(i + 1) == Some(&b'(') {
                            stack.push(Ctx::Sub(0));
                            i += 2;
                        } else {
                            i += 1;
                        }
                    }
                    b'`' => return Err(format!("a backtick substitution at line {}", line_of(i))),
                    b'*' | b'?' | b'[' | b'~' | b'{' | b'}' => {
                        // Globs and brace groups: not a plain value.
                        w.pure = false;
                        w.value.push(c);
                        i += 1;
                    }
                    _ => {
                        w.value.push(c);
                        i += 1;
                    }
                }
            }
            Ctx::Double => match c {
                b'"' => {
                    stack.pop();
                    i += 1;
                }
                b'\\' => i += 2,
                b'$' if b.get(i + 1) == Some(&b'(') => {
                    stack.push(Ctx::Sub(0));
                    i += 2;
                }
                b'`' => return Err(format!("a backtick substitution at line {}", line_of(i))),
                _ => i += 1,
            },
        }
    }
    if stack.len() != 1 {
        return Err("the script ends inside a quote or a $(...)".into());
    }
    if let Some(w) = word
        && w.pure
        && w.has_single
    {
        words.push((w.start..b.len(), w.value));
    }
    Ok(Lexed {
        single_quoted,
        words,
    })
}

/// Runs `program` with `args`, `stdin` as its input, in `dir`; returns (status ok, stdout, stderr).
pub fn run_in(
    dir: &std::path::Path,
    program: &str,
    args: &[&str],
    stdin: &[u8],
) -> (bool, Vec<u8>, String) {
    let mut child = Command::new(program)
        .args(args)
        .current_dir(dir)
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("HOME", dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{program} runs: {e}"));
    if let Some(mut input) = child.stdin.take() {
        input.write_all(stdin).expect("write stdin");
    }
    let out = child.wait_with_output().expect("wait");
    (
        out.status.success(),
        out.stdout,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `dash -n` and `bash -n` accept the script.
pub fn assert_parses(what: &str, script: &str) {
    let dir = tempfile::tempdir().expect("tempdir");
    for shell in ["dash", "bash"] {
        let (ok, _, err) = run_in(dir.path(), shell, &["-n"], script.as_bytes());
        assert!(ok, "{what}: `{shell} -n` rejects the script: {err}");
    }
}

/// Every occurrence of `marker` in the script lies inside single quotes.
pub fn assert_marker_quoted(what: &str, script: &str, lexed: &Lexed, marker: &str) {
    for (at, _) in script.match_indices(marker) {
        let inside = lexed.single_quoted[at..at + marker.len()]
            .iter()
            .all(|q| *q);
        let line = script[..at].matches('\n').count() + 1;
        assert!(
            inside,
            "{what}: {marker:?} on line {line} is outside single quotes:\n{}",
            script.lines().nth(line - 1).unwrap_or("")
        );
    }
}

/// dash prints every quoted word exactly as the lexer decoded it, and nothing the words
/// say gets run: the working directory stays empty and the absolute canary never appears.
pub fn assert_words_round_trip(what: &str, script: &str, lexed: &Lexed) {
    if lexed.words.is_empty() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let mut program = String::new();
    for (range, _) in &lexed.words {
        program.push_str("printf '%s\\0' ");
        program.push_str(&script[range.clone()]);
        program.push('\n');
    }
    let absolute_before = std::path::Path::new(ABSOLUTE_CANARY).exists();
    let (ok, out, err) = run_in(dir.path(), "dash", &["-s"], program.as_bytes());
    assert!(ok, "{what}: dash fails on the quoted words: {err}");
    let printed: Vec<&[u8]> = out.split(|b| *b == 0).collect();
    assert_eq!(printed.len(), lexed.words.len() + 1, "{what}: word count");
    for ((range, decoded), got) in lexed.words.iter().zip(&printed) {
        assert_eq!(
            *got,
            decoded.as_slice(),
            "{what}: dash reads the word at bytes {range:?} differently from its quoting"
        );
    }
    let left: Vec<_> = std::fs::read_dir(dir.path())
        .expect("read dir")
        .filter_map(|e| e.ok().map(|e| e.file_name()))
        .collect();
    assert!(
        left.is_empty(),
        "{what}: running the quoted words created {left:?}"
    );
    assert!(
        absolute_before || !std::path::Path::new(ABSOLUTE_CANARY).exists(),
        "{what}: running the quoted words created {ABSOLUTE_CANARY}"
    );
}

/// Runs the script's top-level variable assignments (`NAME=value` lines) in dash, then
/// prints each variable; returns (name, value) pairs. Nothing may be created meanwhile.
pub fn run_assignments(what: &str, script: &str) -> Vec<(String, Vec<u8>)> {
    let lines: Vec<&str> = script
        .lines()
        .filter(|l| {
            l.split_once('=').is_some_and(|(name, _)| {
                !name.is_empty() && name.bytes().all(|b| b.is_ascii_uppercase() || b == b'_')
            })
        })
        .collect();
    let names: Vec<&str> = lines.iter().filter_map(|l| l.split('=').next()).collect();
    let mut program = String::from("set -eu\n");
    for l in &lines {
        program.push_str(l);
        program.push('\n');
    }
    for n in &names {
        program.push_str(&format!("printf '%s\\0' \"${n}\"\n"));
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let (ok, out, err) = run_in(dir.path(), "dash", &["-s"], program.as_bytes());
    assert!(ok, "{what}: the assignments fail in dash: {err}");
    let left = std::fs::read_dir(dir.path()).expect("read dir").count();
    assert_eq!(left, 0, "{what}: running the assignments created files");
    names
        .iter()
        .zip(out.split(|b| *b == 0))
        .map(|(n, v)| (n.to_string(), v.to_vec()))
        .collect()
}

/// All static checks on one script.
pub fn assert_inert(what: &str, script: &str) -> Lexed {
    assert_parses(what, script);
    let lexed = lex(script).unwrap_or_else(|e| panic!("{what}: the lexer cannot follow {e}"));
    assert_marker_quoted(what, script, &lexed, CANARY);
    assert_words_round_trip(what, script, &lexed);
    lexed
}
