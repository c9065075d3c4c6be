//! The plan of `meshboot packer` (see the module above).
