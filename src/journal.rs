//! Log lines for the systemd journal: a syslog priority prefix (`<3>`, `<4>`, ...) on every line
//! and no timestamp of our own.
//!
//! Why: under systemd, stderr goes to journald, which stamps each line itself and reads a leading
//! `<N>` as the line's priority (sd-daemon(3)); without it every line is "info", so
//! `journalctl -p warning` shows nothing we warned about, and each line carries two timestamps.
//!
//! When: systemd sets `JOURNAL_STREAM=DEVICE:INODE` for a service whose stderr is the journal;
//! the variable is inherited by children whose stderr may be elsewhere, so it counts only when it
//! names the file stderr is ([`stderr_is_journal`]), as systemd.exec(5) says to check.
//!
//! Every line of a multi-line message gets the prefix (journald splits at newlines, and a line
//! without one would be "info"). Levels map as syslog's: error 3, warn 4, info 6, debug and trace
//! 7; the level word itself is left out (the priority says it).

use std::fmt;

use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::{Format, Full, Writer};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

/// The syslog priority of a tracing level.
pub fn priority(level: Level) -> u8 {
    match level {
        Level::ERROR => 3,
        Level::WARN => 4,
        Level::INFO => 6,
        Level::DEBUG | Level::TRACE => 7,
    }
}

/// Whether stderr is the journal stream `JOURNAL_STREAM` names (`DEVICE:INODE`, in decimal).
pub fn stderr_is_journal() -> bool {
    use std::os::fd::AsRawFd;
    let Some(value) = std::env::var_os("JOURNAL_STREAM") else {
        return false;
    };
    let Ok(stat) = nix::sys::stat::fstat(std::io::stderr().as_raw_fd()) else {
        return false;
    };
    names_stream(&value.to_string_lossy(), stat.st_dev, stat.st_ino)
}

/// Whether `JOURNAL_STREAM`'s `value` names the file with this device and inode.
pub fn names_stream(value: &str, dev: u64, ino: u64) -> bool {
    let Some((d, i)) = value.trim().split_once(':') else {
        return false;
    };
    d.parse::<u64>().ok() == Some(dev) && i.parse::<u64>().ok() == Some(ino)
}

/// `message` as written to stderr outside tracing (a start-up error before the log is set up, a
/// control command's failure): with `journal`, each line carries the error priority `<3>`, so
/// `journalctl -p err` shows it; otherwise unchanged. Ends with a newline.
pub fn error_lines(message: &str, journal: bool) -> String {
    let mut out = String::with_capacity(message.len() + 4);
    for line in message.lines() {
        if journal {
            out.push_str("<3>");
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

/// The event format for the journal: `<N>` then the usual line, without time, level or colour.
#[derive(Debug)]
pub struct JournalFormat {
    inner: Format<Full, ()>,
}

impl Default for JournalFormat {
    fn default() -> Self {
        JournalFormat {
            inner: Format::default()
                .without_time()
                .with_level(false)
                .with_ansi(false),
        }
    }
}

impl<S, N> FormatEvent<S, N> for JournalFormat
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let mut line = String::new();
        self.inner
            .format_event(ctx, Writer::new(&mut line), event)?;
        let prio = priority(*event.metadata().level());
        for part in line.lines() {
            writeln!(writer, "<{prio}>{part}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // test code: a panic is a failed test
mod tests {
    use std::io;
    use std::sync::{Arc, Mutex};

    use super::*;

    #[derive(Clone, Default)]
    struct Buf(Arc<Mutex<Vec<u8>>>);

    impl io::Write for Buf {
        fn write(&mut self, b: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    fn logged(f: impl FnOnce()) -> String {
        let buf = Buf::default();
        let out = buf.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(Level::TRACE)
            .event_format(JournalFormat::default())
            .with_writer(move || out.clone())
            .finish();
        tracing::subscriber::with_default(subscriber, f);
        let bytes = buf.0.lock().unwrap().clone();
        String::from_utf8(bytes).unwrap()
    }

    /// Errors written outside tracing carry `<3>` on each line for the journal, and nothing
    /// elsewhere.
    #[test]
    fn plain_error_lines_get_the_error_priority_in_the_journal() {
        let msg = "dnsveil: config error: x.toml: bad\nsecond line";
        assert_eq!(
            error_lines(msg, true),
            "<3>dnsveil: config error: x.toml: bad\n<3>second line\n"
        );
        assert_eq!(error_lines(msg, false), format!("{msg}\n"));
    }

    /// Each line starts with its priority, and nothing else comes before the message: no time,
    /// no level word, no colour codes.
    #[test]
    fn lines_carry_their_syslog_priority_and_no_timestamp() {
        let text = logged(|| {
            tracing::error!("disk on fire");
            tracing::warn!(upstream = "tls://a", "upstream down");
            tracing::info!("listening on udp 127.0.0.1:53");
            tracing::debug!("a query");
        });
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 4, "{text}");
        assert!(lines[0].starts_with("<3>"), "{text}");
        assert!(lines[0].ends_with("disk on fire"), "{text}");
        assert!(lines[1].starts_with("<4>"), "{text}");
        assert!(
            lines[1].contains("upstream down upstream=\"tls://a\""),
            "{text}"
        );
        assert!(lines[2].starts_with("<6>"), "{text}");
        assert!(lines[3].starts_with("<7>"), "{text}");
        for line in &lines {
            assert!(!line.contains("WARN") && !line.contains("INFO"), "{line}");
            assert!(!line.contains('\x1b'), "{line}");
            // No ISO 8601 time stamp such as 2026-12-06T22:23:06.
            assert!(!line.contains("T2") && !line.contains(":0"), "{line}");
        }
    }

    /// A message of several lines is several journal lines, each with the priority.
    #[test]
    fn every_line_of_a_multi_line_message_is_prefixed() {
        let text = logged(|| tracing::warn!("first\nsecond\nthird"));
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3, "{text}");
        assert!(lines.iter().all(|l| l.starts_with("<4>")), "{text}");
        assert!(lines[2].starts_with("<4>third"), "{text}");
    }

    #[test]
    fn journal_stream_must_name_stderr() {
        assert!(names_stream("64769:1234", 64769, 1234));
        assert!(names_stream("64769:1234\n", 64769, 1234));
        assert!(!names_stream("64769:1235", 64769, 1234));
        assert!(!names_stream("64769", 64769, 1234));
        assert!(!names_stream("", 64769, 1234));
        assert!(!names_stream("x:y", 64769, 1234));
    }
}
