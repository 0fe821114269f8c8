//! How the binaries under test are linked. The tuned build (`tools/build-tuned`) links the
//! client statically; a static binary that calls glibc's user or group lookups carries a
//! copy of NSS that cannot load its modules, and fails at run time on a system that names
//! its users through LDAP or systemd. So a future user lookup in `uprisectl` must not slip
//! into the static client unseen.

use std::io::Write;

/// Whether an ELF file asks for an interpreter (a dynamic executable): a `PT_INTERP`
/// program header.
fn dynamic(path: &str) -> bool {
    let bytes = std::fs::read(path).unwrap();
    let read = |at: usize, size: usize| -> u64 {
        bytes[at..at + size]
            .iter()
            .rev()
            .fold(0, |value, byte| value << 8 | u64::from(*byte))
    };
    assert_eq!(&bytes[..4], b"\x7fELF", "{path} is not ELF");
    assert_eq!(bytes[4], 2, "{path} is not a 64-bit ELF");
    let (offset, size, count) = (read(0x20, 8) as usize, read(0x36, 2) as usize, read(0x38, 2) as usize);
    (0..count).any(|index| read(offset + index * size, 4) == 3)
}

/// What a user or group lookup pulls in (`getgroups` is a system call, not a lookup).
const NSS: [&str; 8] = [
    "getpw",
    "getgrnam",
    "getgrgid",
    "getgrent",
    "getgrouplist",
    "initgroups",
    "getspnam",
    "__nss_",
];

#[test]
fn a_static_client_links_no_nss_functions() {
    let client = env!("CARGO_BIN_EXE_uprisectl");
    if dynamic(client) {
        let _ = writeln!(
            std::io::stderr(),
            "a_static_client_links_no_nss_functions: skipped: the client is dynamic (a plain build); the tuned build's is checked"
        );
        return;
    }
    let Ok(output) = std::process::Command::new("nm").arg(client).output() else {
        let _ = writeln!(
            std::io::stderr(),
            "a_static_client_links_no_nss_functions: skipped: no `nm` (binutils)"
        );
        return;
    };
    let symbols = String::from_utf8_lossy(&output.stdout);
    let nss: Vec<&str> = symbols
        .lines()
        .filter_map(|line| line.split_whitespace().last())
        .filter(|name| NSS.iter().any(|nss| name.starts_with(nss)))
        .collect();
    assert!(nss.is_empty(), "the static client links NSS functions: {nss:?}");
    assert!(
        symbols.lines().count() > 1000,
        "nm listed no symbols: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}
