//! The call log: what each stand-in recorded (tool, exit code, argv), and queries over it.

use std::fmt;

/// One recorded call of a stand-in: `tool`, its exit code (or `killed`), its argv.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call {
    pub tool: String,
    pub rc: String,
    pub args: Vec<String>,
}

impl Call {
    pub fn ok(&self) -> bool {
        self.rc == "0"
    }
    pub fn is(&self, tool: &str, args: &[&str]) -> bool {
        self.tool == tool && self.args == args
    }
    /// The URL a `curl` call fetched: an https one, or the metadata service's (plain http,
    /// the only other URL the curl stand-in serves).
    pub fn url(&self) -> Option<&str> {
        (self.tool == "curl")
            .then(|| {
                self.args
                    .iter()
                    .find(|a| a.starts_with("https://") || a.starts_with("http://169.254.169.254/"))
            })
            .flatten()
            .map(String::as_str)
    }
    pub fn is_own_ip_lookup(&self) -> bool {
        self.is("tailscale", &["ip", "-4"])
    }
    pub fn is_tailscale_up(&self) -> bool {
        self.tool == "tailscale" && self.args.first().map(String::as_str) == Some("up")
    }
}

impl fmt::Display for Call {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.tool)?;
        for a in &self.args {
            write!(f, " {a}")?;
        }
        write!(f, " -> {}", self.rc)
    }
}

pub fn parse_calls(text: &str) -> Vec<Call> {
    text.lines()
        .map(|line| {
            let mut fields = line.split('\t').map(str::to_string);
            Call {
                tool: fields.next().unwrap_or_default(),
                rc: fields.next().unwrap_or_default(),
                args: fields.collect(),
            }
        })
        .collect()
}

pub fn show(calls: &[Call]) -> String {
    calls
        .iter()
        .enumerate()
        .map(|(i, c)| format!("  {i:3}: {c}\n"))
        .collect()
}

/// Index of the first call at or after `from` that satisfies `pred`.
pub fn find_from(calls: &[Call], from: usize, pred: impl Fn(&Call) -> bool) -> Option<usize> {
    calls
        .iter()
        .enumerate()
        .skip(from)
        .find(|(_, c)| pred(c))
        .map(|(i, _)| i)
}

/// The exit codes of the calls that satisfy `pred`, in order.
pub fn exit_codes(calls: &[Call], pred: impl Fn(&Call) -> bool) -> Vec<String> {
    calls
        .iter()
        .filter(|c| pred(c))
        .map(|c| c.rc.clone())
        .collect()
}

/// The pauses recorded by the `sleep` stand-in, in order.
pub fn sleeps(calls: &[Call]) -> Vec<String> {
    calls
        .iter()
        .filter(|c| c.tool == "sleep")
        .map(|c| c.args.join(" "))
        .collect()
}

/// The pauses the bootstrap's retry loop takes between `attempts` attempts: 1s, doubling,
/// capped at `max`.
pub fn backoff(attempts: u32, max: u32) -> Vec<String> {
    let mut delay = 1;
    (1..attempts)
        .map(|_| {
            let d = delay;
            delay = (delay * 2).min(max);
            d.to_string()
        })
        .collect()
}
