//! The control-socket client: connects to the daemon, sends one `Request` line and reads
//! `Reply` lines until the final one, or, for a stream (`monitor`), until the daemon closes
//! the connection (see `control::proto` for the framing).

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};

use crate::control::proto::{MAX_LINE, Reply, Request};

/// The socket of the system instance (used when running as root).
pub const SYSTEM_SOCKET: &str = "/run/uprise/control";

/// A connection to the daemon's control socket.
pub struct Client {
    stream: BufReader<UnixStream>,
}

impl Client {
    /// Connects to the control socket at `path`.
    pub fn connect(path: impl AsRef<Path>) -> Result<Client, String> {
        let path = path.as_ref();
        let stream = UnixStream::connect(path).map_err(|error| {
            format!(
                "Unable to connect to uprise at {}: {}",
                path.display(),
                describe(&error)
            )
        })?;
        Ok(Client {
            stream: BufReader::new(stream),
        })
    }

    /// Sends `req` and passes every reply line to `on_reply` until the final one. `Done` ends
    /// the exchange with `Ok`; `Error` with `Err(message)` (after `on_reply` has seen it). A
    /// connection that ends before a final line gives `Lost connection to uprise`.
    pub fn request(&mut self, req: &Request, mut on_reply: impl FnMut(&Reply)) -> Result<(), String> {
        self.send(req)?;
        loop {
            let Some((reply, _)) = self.read_reply()? else {
                return Err("Lost connection to uprise".to_string());
            };
            on_reply(&reply);
            match reply {
                Reply::Done => return Ok(()),
                Reply::Error { message } => return Err(message),
                Reply::Status { .. }
                | Reply::Text { .. }
                | Reply::Event { .. }
                | Reply::Change { .. }
                | Reply::Timers { .. }
                | Reply::Pools { .. }
                | Reply::History { .. }
                | Reply::Admission { .. } => {}
            }
        }
    }

    /// Sends `req` and passes every reply line, with its text as received, to `on_reply`, for
    /// requests that stream (`Monitor`). The stream ends with `Ok` when the daemon closes the
    /// connection or `on_reply` returns `false`; with `Err(message)` on an `Error` reply (after
    /// `on_reply` has seen it) or a line cut short.
    pub fn stream(&mut self, req: &Request, mut on_reply: impl FnMut(&Reply, &str) -> bool) -> Result<(), String> {
        self.send(req)?;
        while let Some((reply, text)) = self.read_reply()? {
            if !on_reply(&reply, &text) {
                return Ok(());
            }
            if let Reply::Error { message } = reply {
                return Err(message);
            }
        }
        Ok(())
    }

    fn send(&mut self, req: &Request) -> Result<(), String> {
        let mut line = serde_json::to_string(req).map_err(|error| format!("Unable to encode request: {error}"))?;
        line.push('\n');
        self.stream
            .get_mut()
            .write_all(line.as_bytes())
            .and_then(|()| self.stream.get_mut().flush())
            .map_err(|error| format!("Unable to send request to uprise: {}", describe(&error)))
    }

    /// The next reply and its line (blank lines are skipped); `None` when the connection
    /// ended cleanly between lines.
    fn read_reply(&mut self) -> Result<Option<(Reply, String)>, String> {
        let mut buffer = Vec::new();
        loop {
            buffer.clear();
            let read = (&mut self.stream)
                .take(MAX_LINE as u64 + 1)
                .read_until(b'\n', &mut buffer)
                .map_err(|error| format!("Lost connection to uprise: {}", describe(&error)))?;
            if read == 0 {
                return Ok(None);
            }
            if buffer.last() != Some(&b'\n') {
                if read > MAX_LINE {
                    return Err(format!("Reply from uprise longer than {MAX_LINE} bytes"));
                }
                return Err("Lost connection to uprise".to_string());
            }
            let text = &buffer[..buffer.len() - 1];
            if text.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            let reply: Reply =
                serde_json::from_slice(text).map_err(|error| format!("Invalid reply from uprise: {error}"))?;
            return Ok(Some((reply, String::from_utf8_lossy(text).into_owned())));
        }
    }
}

/// An I/O error's text without Rust's ` (os error N)` suffix, as `strerror` gives it.
fn describe(error: &std::io::Error) -> String {
    let text = error.to_string();
    match text.rfind(" (os error ") {
        Some(at) if text.ends_with(')') => text[..at].to_string(),
        _ => text,
    }
}

/// The control socket to use: `explicit` (from `--socket`), else `$UPRISE_SOCKET`, else
/// `$XDG_RUNTIME_DIR/uprise/control` (or `/run/user/UID/uprise/control` when that variable
/// is unset); as root, that one only when it exists, else the system's `/run/uprise/control`.
pub fn socket_path(explicit: Option<&str>) -> PathBuf {
    resolve_socket_path(
        explicit,
        &|name| std::env::var(name).ok(),
        nix::unistd::geteuid().as_raw(),
    )
}

/// `socket_path` with the environment and the effective uid given.
pub(crate) fn resolve_socket_path(explicit: Option<&str>, env: &dyn Fn(&str) -> Option<String>, euid: u32) -> PathBuf {
    if let Some(path) = explicit {
        return PathBuf::from(path);
    }
    let set = |name: &str| env(name).filter(|value| !value.is_empty());
    if let Some(path) = set("UPRISE_SOCKET") {
        return PathBuf::from(path);
    }
    let user = match set("XDG_RUNTIME_DIR") {
        Some(dir) => Path::new(&dir).join("uprise/control"),
        None => PathBuf::from(format!("/run/user/{euid}/uprise/control")),
    };
    // Root talks to the system daemon, unless root runs a session daemon of its own.
    if euid == 0 && !user.exists() {
        return PathBuf::from(SYSTEM_SOCKET);
    }
    user
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::BufRead;
    use std::os::unix::net::UnixListener;
    use std::thread::JoinHandle;

    /// Serves one connection: reads the request line, writes `reply` bytes, returns the request.
    fn serve(reply: Vec<u8>) -> (tempfile::TempDir, PathBuf, JoinHandle<String>) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("control");
        let listener = UnixListener::bind(&path).unwrap();
        let handle = std::thread::spawn(move || {
            let (stream, _) = listener.accept().unwrap();
            let mut reader = BufReader::new(stream);
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            let _ = reader.get_mut().write_all(&reply);
            line
        });
        (dir, path, handle)
    }

    #[test]
    fn request_collects_replies_until_done() {
        let replies = b"{\"reply\":\"text\",\"text\":\"init (uprise 1)\"}\n\n{\"reply\":\"done\"}\n{\"reply\":\"text\",\"text\":\"late\"}\n";
        let (_dir, path, handle) = serve(replies.to_vec());
        let mut client = Client::connect(&path).unwrap();
        let mut seen = Vec::new();
        client
            .request(&Request::Version, |reply| seen.push(reply.clone()))
            .unwrap();
        assert_eq!(
            seen,
            vec![
                Reply::Text {
                    text: "init (uprise 1)".into()
                },
                Reply::Done
            ]
        );
        assert_eq!(handle.join().unwrap(), "{\"method\":\"version\"}\n");
    }

    #[test]
    fn error_reply_is_the_error() {
        let (_dir, path, handle) = serve(b"{\"reply\":\"error\",\"message\":\"Unknown job: foo\"}\n".to_vec());
        let mut client = Client::connect(&path).unwrap();
        let result = client.request(&Request::Usage { job: "foo".into() }, |_| {});
        assert_eq!(result, Err("Unknown job: foo".to_string()));
        handle.join().unwrap();
    }

    #[test]
    fn end_of_stream_before_final_line_is_lost_connection() {
        let (_dir, path, handle) = serve(b"{\"reply\":\"text\",\"text\":\"x\"}\n{\"reply\":\"do".to_vec());
        let mut client = Client::connect(&path).unwrap();
        let mut count = 0;
        let result = client.request(&Request::List, |_| count += 1);
        assert_eq!(result, Err("Lost connection to uprise".to_string()));
        assert_eq!(count, 1);
        handle.join().unwrap();
    }

    #[test]
    fn overlong_and_invalid_lines_are_errors() {
        let mut long = b"{\"reply\":\"text\",\"text\":\"".to_vec();
        long.resize(MAX_LINE + 10, b'a');
        let (_dir, path, handle) = serve(long);
        let mut client = Client::connect(&path).unwrap();
        let result = client.request(&Request::List, |_| {});
        assert!(result.unwrap_err().contains("longer than"));
        handle.join().unwrap();

        let (_dir, path, handle) = serve(b"not json\n".to_vec());
        let mut client = Client::connect(&path).unwrap();
        let result = client.request(&Request::List, |_| {});
        assert!(result.unwrap_err().starts_with("Invalid reply from uprise: "));
        handle.join().unwrap();
    }

    #[test]
    fn stream_passes_every_line_until_the_daemon_closes() {
        let replies = b"{\"reply\":\"event\",\"name\":\"up\",\"env\":[\"A=1\"]}\n\n{\"reply\":\"change\",\"job\":\"x\",\"instance\":\"\",\"goal\":\"start\",\"state\":\"running\"}\n";
        let (_dir, path, handle) = serve(replies.to_vec());
        let mut client = Client::connect(&path).unwrap();
        let mut seen = Vec::new();
        let result = client.stream(&Request::Monitor, |reply, text| {
            seen.push((reply.clone(), text.to_string()));
            true
        });
        assert_eq!(result, Ok(()));
        assert_eq!(seen.len(), 2);
        assert_eq!(
            seen[0],
            (
                Reply::Event {
                    name: "up".into(),
                    env: vec!["A=1".into()]
                },
                r#"{"reply":"event","name":"up","env":["A=1"]}"#.to_string()
            )
        );
        assert!(matches!(&seen[1].0, Reply::Change { state, .. } if state == "running"));
        assert_eq!(handle.join().unwrap(), "{\"method\":\"monitor\"}\n");
    }

    #[test]
    fn stream_stops_when_asked_and_on_errors() {
        let (_dir, path, handle) = serve(b"{\"reply\":\"done\"}\n{\"reply\":\"done\"}\n".to_vec());
        let mut client = Client::connect(&path).unwrap();
        let mut count = 0;
        let result = client.stream(&Request::Monitor, |_, _| {
            count += 1;
            false
        });
        assert_eq!((result, count), (Ok(()), 1));
        handle.join().unwrap();

        let (_dir, path, handle) = serve(b"{\"reply\":\"error\",\"message\":\"Permission denied\"}\n".to_vec());
        let mut client = Client::connect(&path).unwrap();
        let result = client.stream(&Request::Monitor, |_, _| true);
        assert_eq!(result, Err("Permission denied".to_string()));
        handle.join().unwrap();

        let (_dir, path, handle) = serve(b"{\"reply\":\"do".to_vec());
        let mut client = Client::connect(&path).unwrap();
        let result = client.stream(&Request::Monitor, |_, _| true);
        assert_eq!(result, Err("Lost connection to uprise".to_string()));
        handle.join().unwrap();
    }

    #[test]
    fn connect_failure_names_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("missing");
        let error = Client::connect(&path).err().unwrap();
        assert_eq!(
            error,
            format!(
                "Unable to connect to uprise at {}: No such file or directory",
                path.display()
            )
        );
    }

    #[test]
    fn socket_path_resolution_order() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |name: &str| {
                pairs
                    .iter()
                    .find(|(key, _)| *key == name)
                    .map(|(_, value)| value.to_string())
            }
        };
        let full = env(&[("UPRISE_SOCKET", "/tmp/s"), ("XDG_RUNTIME_DIR", "/run/user/7")]);
        assert_eq!(resolve_socket_path(Some("/x"), &full, 7), PathBuf::from("/x"));
        assert_eq!(resolve_socket_path(None, &full, 7), PathBuf::from("/tmp/s"));
        assert_eq!(resolve_socket_path(None, &full, 0), PathBuf::from("/tmp/s"));
        let xdg = env(&[("XDG_RUNTIME_DIR", "/run/user/7")]);
        assert_eq!(resolve_socket_path(None, &xdg, 0), PathBuf::from(SYSTEM_SOCKET));
        assert_eq!(
            resolve_socket_path(None, &xdg, 7),
            PathBuf::from("/run/user/7/uprise/control")
        );
        let none = env(&[("UPRISE_SOCKET", "")]);
        assert_eq!(
            resolve_socket_path(None, &none, 1000),
            PathBuf::from("/run/user/1000/uprise/control")
        );
        // Root with a session daemon of its own talks to that one.
        let runtime = tempfile::tempdir().unwrap();
        std::fs::create_dir(runtime.path().join("uprise")).unwrap();
        std::fs::write(runtime.path().join("uprise/control"), "").unwrap();
        let dir = runtime.path().to_string_lossy().into_owned();
        let with_session = move |name: &str| (name == "XDG_RUNTIME_DIR").then(|| dir.clone());
        assert_eq!(
            resolve_socket_path(None, &with_session, 0),
            runtime.path().join("uprise/control")
        );
    }
}
