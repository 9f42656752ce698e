//! The control socket: a unix stream socket on which `dnsveil stats`, `flush`, `reload` and
//! `portal` ask the running instance.
//!
//! ```text
//!   dnsveil stats --connect--> control.sock --"stats\n"--> Controls::run --> "ok\n" + text, close
//!                                           (one command per connection, MAX_LINE octets, TIMEOUT)
//! ```
//!
//! The protocol is one line in, and a first line of `ok` or `error: WHY` out, then free text, then
//! the server closes. Commands: `stats`, `metrics` (the Prometheus text), `flush`, `flush NAME`,
//! `reload`, `portal MINUTES`.
//!
//! `reload` answers when the reload is over: `ok` once the new configuration is in force, `error:`
//! when it was refused (the old one keeps running). That is what makes `systemctl reload`
//! synchronous: the unit's `ExecReload=` runs `dnsveil reload`, and systemd 252 (Debian 12) has
//! no `Type=notify-reload` to wait for the service's READY=1 itself.
//!
//! Who may ask: the socket is created with mode 0660 (owner and group; bound under a temporary name,
//! given its mode, then renamed into place, so it is never reachable with looser rights) in a
//! directory we create 0750 if it is missing. The default is under the runtime directory:
//! `$RUNTIME_DIRECTORY` (systemd's `RuntimeDirectory=dnsveil`), else `/run/dnsveil` for root, else
//! `$XDG_RUNTIME_DIR/dnsveil` ([`default_path`]). A live socket at the path (another instance) is
//! never taken over; a stale one (nothing listens) is replaced; anything else at the path is an
//! error.
//!
//! Limitations: no authentication beyond file permissions (as unbound-control's local socket);
//! commands are served one at a time per connection and at most [`MAX_CONNECTIONS`] at once.

use std::io::{Read, Write};
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use thiserror::Error;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{mpsc, oneshot, Semaphore};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::observe::{prometheus, Sources};
use crate::wire::Name;

/// Longest command line read.
pub const MAX_LINE: usize = 1024;
/// Time a client has to send its command.
pub const TIMEOUT: Duration = Duration::from_secs(10);
/// Time a command may take to answer, and that a client waits for the answer: a reload reads
/// files and builds upstream transports (systemd gives `ExecReload=` 90 s by default).
pub const REPLY_TIMEOUT: Duration = Duration::from_secs(60);
/// Connections served at once.
pub const MAX_CONNECTIONS: usize = 4;
/// File name of the socket in its directory.
pub const SOCKET_NAME: &str = "control.sock";
/// Longest captive-portal window `portal` may open, in minutes.
pub const MAX_PORTAL_MINUTES: u32 = 60;

/// Why the control socket cannot be set up, or a client cannot ask.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum ControlError {
    /// Another process serves a socket at the path.
    #[error(
        "{}: another dnsveil is serving its control socket here; stop it, or give this one \
         another path with --control-socket PATH (or \"\" for none)",
        .0.display()
    )]
    InUse(PathBuf),
    /// Something that is not a socket is at the path.
    #[error("{}: exists and is not a socket; remove it or choose another --control-socket path", .0.display())]
    NotASocket(PathBuf),
    /// An I/O failure at `path` while doing `what`.
    #[error("{}: cannot {what}: {source}", path.display())]
    Io {
        path: PathBuf,
        what: &'static str,
        #[source]
        source: std::io::Error,
    },
    /// No path was given and no runtime directory is known.
    #[error(
        "no control socket path: set RUNTIME_DIRECTORY or XDG_RUNTIME_DIR, or pass \
         --control-socket PATH"
    )]
    NoDefault,
    /// The server answered `error: ...`.
    #[error("{0}")]
    Refused(String),
}

fn io_err<'a>(
    path: &'a Path,
    what: &'static str,
) -> impl FnOnce(std::io::Error) -> ControlError + 'a {
    move |source| ControlError::Io {
        path: path.to_path_buf(),
        what,
        source,
    }
}

/// The default socket path (see the module docs), or `None` if no runtime directory is known.
pub fn default_path() -> Option<PathBuf> {
    let env_dir = |var: &str| {
        std::env::var_os(var)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    if let Some(dir) = std::env::var("RUNTIME_DIRECTORY")
        .ok()
        .and_then(|v| v.split(':').next().map(PathBuf::from))
        .filter(|p| !p.as_os_str().is_empty())
    {
        return Some(dir.join(SOCKET_NAME));
    }
    if nix::unistd::geteuid().is_root() {
        return Some(PathBuf::from("/run/dnsveil").join(SOCKET_NAME));
    }
    env_dir("XDG_RUNTIME_DIR").map(|d| d.join("dnsveil").join(SOCKET_NAME))
}

/// A reload asked for on the socket: where its outcome goes, the text to show (`Ok`: taken) or
/// why it was refused (`Err`).
pub type ReloadReply = oneshot::Sender<Result<String, String>>;

/// Opens a captive-portal window of the given minutes; the text to show, or why not.
pub type PortalOpener = Arc<dyn Fn(u32) -> Result<String, String> + Send + Sync>;

/// What the commands act on.
pub struct Controls {
    pub sources: Sources,
    /// Asks the app for a reload (as SIGHUP does) and for its outcome.
    pub reload: mpsc::Sender<ReloadReply>,
    /// Opens a captive-portal window of this many minutes, if the app supports one; `Err` says
    /// why not.
    pub portal: Option<PortalOpener>,
}

impl Controls {
    /// Runs one command line; the reply's first line is `ok` or `error: ...`.
    pub async fn run(&self, line: &str) -> String {
        let mut words = line.split_whitespace();
        let reply = match (words.next(), words.next(), words.next()) {
            (Some("stats"), None, _) => Ok(self.sources.snapshot().human()),
            (Some("metrics"), None, _) => Ok(prometheus::render(&self.sources.snapshot())),
            (Some("flush"), name, None) => self.flush(name),
            (Some("reload"), None, _) => self.reload().await,
            (Some("portal"), minutes, None) => self.portal(minutes),
            _ => Err(format!(
                "unknown command {:?} (expected stats, metrics, flush [NAME], reload or \
                 portal [MINUTES])",
                line.trim()
            )),
        };
        match reply {
            Ok(text) => format!("ok\n{text}"),
            Err(why) => format!("error: {why}\n"),
        }
    }

    /// Asks for a reload and waits for its outcome (reloads run one at a time; one asked while
    /// another runs waits for its turn).
    async fn reload(&self) -> Result<String, String> {
        let (tx, rx) = oneshot::channel();
        self.reload
            .send(tx)
            .await
            .map_err(|_| "shutting down".to_string())?;
        rx.await
            .map_err(|_| "shut down before the reload finished".to_string())?
    }

    fn flush(&self, name: Option<&str>) -> Result<String, String> {
        let Some(cache) = &self.sources.cache else {
            return Err("the cache is off (cache.size = 0)".into());
        };
        let name = name
            .map(|n| n.parse::<Name>().map_err(|e| format!("{n:?}: {e}")))
            .transpose()?;
        let n = cache.flush(name.as_ref());
        match &name {
            Some(name) => info!(%name, entries = n, "cache flushed for a name"),
            None => info!(entries = n, "cache flushed"),
        }
        Ok(format!("flushed {n} entries\n"))
    }

    fn portal(&self, minutes: Option<&str>) -> Result<String, String> {
        let minutes = match minutes {
            None => 5,
            Some(m) => m
                .parse::<u32>()
                .ok()
                .filter(|m| (1..=MAX_PORTAL_MINUTES).contains(m))
                .ok_or_else(|| format!("{m:?}: minutes must be 1 to {MAX_PORTAL_MINUTES}"))?,
        };
        match &self.portal {
            Some(open) => open(minutes),
            None => Err("captive-portal support is off (upstream.captive_portal = \"off\")".into()),
        }
    }
}

/// A bound control socket; the file is removed when it is dropped (if it is still ours).
pub struct ControlSocket {
    listener: UnixListener,
    path: PathBuf,
    /// The socket file's inode, to remove only our own.
    ino: u64,
}

impl ControlSocket {
    /// Binds the socket at `path` (mode 0660), creating its directory (0750) if missing.
    pub fn bind(path: &Path) -> Result<ControlSocket, ControlError> {
        use std::os::unix::fs::MetadataExt;
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            if !dir.exists() {
                std::fs::DirBuilder::new()
                    .recursive(true)
                    .mode(0o750)
                    .create(dir)
                    .map_err(io_err(dir, "create the directory"))?;
            }
        }
        match std::fs::symlink_metadata(path) {
            Ok(m) if m.file_type().is_socket() => {
                if std::os::unix::net::UnixStream::connect(path).is_ok() {
                    return Err(ControlError::InUse(path.to_path_buf()));
                }
                std::fs::remove_file(path).map_err(io_err(path, "remove the stale socket"))?;
            }
            Ok(_) => return Err(ControlError::NotASocket(path.to_path_buf())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_err(path, "inspect the path")(e)),
        }
        let mut tmp = path.as_os_str().to_owned();
        tmp.push(format!(".{}.tmp", std::process::id()));
        let tmp = PathBuf::from(tmp);
        let _ = std::fs::remove_file(&tmp);
        let listener = UnixListener::bind(&tmp).map_err(io_err(path, "bind the socket"))?;
        let placed = std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o660))
            .and_then(|()| std::fs::rename(&tmp, path));
        if let Err(e) = placed {
            let _ = std::fs::remove_file(&tmp);
            return Err(io_err(path, "put the socket in place")(e));
        }
        let ino = std::fs::metadata(path)
            .map_err(io_err(path, "inspect the socket"))?
            .ino();
        Ok(ControlSocket {
            listener,
            path: path.to_path_buf(),
            ino,
        })
    }

    /// Where the socket is.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Serves commands until `shutdown`, then removes the socket file.
    pub async fn serve(self, controls: Arc<Controls>, shutdown: CancellationToken) {
        let permits = Arc::new(Semaphore::new(MAX_CONNECTIONS));
        loop {
            let permit = tokio::select! {
                _ = shutdown.cancelled() => break,
                p = permits.clone().acquire_owned() => match p {
                    Ok(p) => p,
                    Err(_) => break,
                },
            };
            let stream = tokio::select! {
                _ = shutdown.cancelled() => break,
                r = self.listener.accept() => match r {
                    Ok((s, _)) => s,
                    Err(e) => {
                        debug!(error = %e, "control accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
            };
            let controls = controls.clone();
            tokio::spawn(async move {
                let _permit = permit;
                answer(stream, &controls).await;
            });
        }
    }
}

impl Drop for ControlSocket {
    fn drop(&mut self) {
        use std::os::unix::fs::MetadataExt;
        // Another instance may have replaced a socket it took for stale: leave that one alone.
        if std::fs::metadata(&self.path).is_ok_and(|m| m.ino() == self.ino) {
            if let Err(e) = std::fs::remove_file(&self.path) {
                warn!(path = %self.path.display(), error = %e, "cannot remove the control socket");
            }
        }
    }
}

/// Reads one command line from `stream` (within [`TIMEOUT`]) and writes the reply (within
/// [`REPLY_TIMEOUT`]).
async fn answer(stream: UnixStream, controls: &Controls) {
    let (read, mut write) = stream.into_split();
    let mut line = String::new();
    let mut reader = BufReader::new(read).take(MAX_LINE as u64);
    let reply = match tokio::time::timeout(TIMEOUT, reader.read_line(&mut line)).await {
        Err(_) => {
            debug!("control client too slow to send its command; closed");
            return;
        }
        Ok(Ok(_)) if !line.trim().is_empty() => {
            match tokio::time::timeout(REPLY_TIMEOUT, controls.run(&line)).await {
                Ok(reply) => reply,
                Err(_) => format!(
                    "error: no outcome within {} s (see the log)\n",
                    REPLY_TIMEOUT.as_secs()
                ),
            }
        }
        Ok(Ok(_)) => "error: empty command\n".to_string(),
        Ok(Err(e)) => format!("error: {e}\n"),
    };
    let _ = tokio::time::timeout(TIMEOUT, async {
        let _ = write.write_all(reply.as_bytes()).await;
        let _ = write.shutdown().await;
    })
    .await;
}

/// Sends `command` to the socket at `path` and returns the reply's text (after its `ok` line);
/// an `error: ...` reply becomes [`ControlError::Refused`]. Blocking; for the command-line client.
pub fn ask(path: &Path, command: &str) -> Result<String, ControlError> {
    let mut stream = std::os::unix::net::UnixStream::connect(path).map_err(io_err(
        path,
        "connect (is dnsveil running, and may you use its socket?)",
    ))?;
    stream
        .set_read_timeout(Some(REPLY_TIMEOUT + TIMEOUT))
        .and_then(|()| stream.set_write_timeout(Some(TIMEOUT)))
        .map_err(io_err(path, "set a timeout"))?;
    stream
        .write_all(format!("{command}\n").as_bytes())
        .map_err(io_err(path, "send the command"))?;
    let mut reply = String::new();
    stream
        .take(16 << 20)
        .read_to_string(&mut reply)
        .map_err(io_err(path, "read the reply"))?;
    match reply.split_once('\n') {
        Some(("ok", rest)) => Ok(rest.to_string()),
        _ => Err(ControlError::Refused(
            reply
                .trim_end()
                .strip_prefix("error: ")
                .unwrap_or(reply.trim_end())
                .to_string(),
        )),
    }
}
