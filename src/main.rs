//! The process edge: command line, config loading, tracing, the tokio runtime, signals and exit
//! codes. Everything else lives in the library; the service itself is composed in `dnsveil::app`.
//!
//! Exit codes: 0 success; 1 a runtime failure (e.g. a listener cannot bind) or, for `check-config`,
//! a config that cannot run, or, for `query`, no answer; 2 a usage error (clap); 78 (`EX_CONFIG`)
//! a config error in `run`, reported before anything starts (a systemd unit can set
//! `RestartPreventExitStatus=78`). `check-config` and `run` check the same things: the config
//! ([`Config`]) and what is built from it ([`Plan::build`]: the hosts file, the upstream
//! transports).
//!
//! Signals: SIGINT/SIGTERM cancel the shutdown token (graceful: listeners stop, in-flight work
//! drains within a bound); a second one exits at once. SIGHUP asks the app to reload (hosts file) and
//! to log the cache statistics.

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, CommandFactory, Parser, Subcommand};
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::Layer;

use dnsveil::app::{ConfigSource, Plan};
use dnsveil::config::{knob, Config, DnssecMode, LogLevel, Mode, Overrides, Strategy};
use dnsveil::control;
use dnsveil::server::acl::Cidr;
use dnsveil::server::Activated;
use dnsveil::upstream::UpstreamUrl;
use dnsveil::wire::{Name, RType};
use dnsveil::{journal, query};

/// Exit status for an invalid configuration (sysexits.h `EX_CONFIG`).
const EXIT_CONFIG: u8 = 78;

/// How long the runtime waits for stray tasks after the app has returned.
const RUNTIME_SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

#[derive(Parser, Debug)]
#[command(
    name = "dnsveil",
    version,
    about = "Encrypted DNS stub resolver: a caching forwarder over DNS-over-TLS and DNS-over-HTTPS"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the resolver (with the embedded default config unless --config is given).
    Run(Box<RunArgs>),
    /// Check a config file as `run` would (hosts file and upstream CA files included), print
    /// "FILE: ok" and a summary; exit 1 if it cannot run.
    CheckConfig {
        /// The config file to check.
        file: PathBuf,
    },
    /// Ask one upstream one question directly and print the answer like dig (exit 0 on any
    /// answer, 1 if none came).
    Query(QueryArgs),
    /// Write the manual pages (dnsveil.8 and one per command) into DIR.
    Manpage {
        /// The directory to write them into (created if missing).
        #[arg(value_name = "DIR")]
        dir: PathBuf,
    },
    /// Print the shell completion script for SHELL on standard output.
    Completions {
        /// bash, zsh, fish, elvish or powershell.
        #[arg(value_name = "SHELL")]
        shell: clap_complete::Shell,
    },
    /// Say which block list and which rule block (or allow) a name, from the config alone (no
    /// daemon needed; fetched lists are read from their last good copy).
    Why(WhyArgs),
    /// Print the running instance's figures: queries, answers by source, cache, upstreams.
    Stats(ControlArgs),
    /// Empty the running instance's cache, or drop NAME and the names below it.
    Flush {
        /// Drop only this name and the names below it.
        #[arg(value_name = "NAME", value_parser = parse_name)]
        name: Option<Name>,
        #[command(flatten)]
        control: ControlArgs,
    },
    /// Ask the running instance to reload its configuration (as SIGHUP does) and wait for the
    /// outcome: exit 0 once the new configuration is in force, 1 when it was refused (the running
    /// one stays). The unit's ExecReload= runs it, so `systemctl reload` waits too.
    Reload(ControlArgs),
    /// Open a time-limited window in which every name resolves through the network's own
    /// resolvers, to log in to a captive portal.
    Portal {
        /// Length of the window in minutes (1 to 60).
        #[arg(long, value_name = "N", default_value_t = 5,
              value_parser = clap::value_parser!(u32).range(1..=i64::from(control::MAX_PORTAL_MINUTES)))]
        minutes: u32,
        #[command(flatten)]
        control: ControlArgs,
    },
}

/// Where the running instance's control socket is.
#[derive(Args, Debug)]
struct ControlArgs {
    /// The control socket (default: $RUNTIME_DIRECTORY/control.sock, else
    /// /run/dnsveil/control.sock for root, else $XDG_RUNTIME_DIR/dnsveil/control.sock).
    #[arg(long, value_name = "PATH")]
    control_socket: Option<PathBuf>,
}

/// `dnsveil why NAME`.
#[derive(Args, Debug)]
struct WhyArgs {
    /// The name to look up.
    #[arg(value_name = "NAME", value_parser = parse_name)]
    name: Name,
    /// Config file (TOML). Without it the embedded default is used.
    #[arg(short, long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Block list: a file or an https:// URL (repeatable; replaces block.lists).
    #[arg(long, value_name = "FILE|URL")]
    blocklist: Vec<String>,
    /// Allow list file (repeatable; replaces block.allow).
    #[arg(long, value_name = "FILE")]
    allowlist: Vec<String>,
}

/// `dnsveil query NAME [TYPE]`.
#[derive(Args, Debug)]
struct QueryArgs {
    /// The name to look up.
    #[arg(value_name = "NAME", value_parser = parse_name)]
    name: Name,
    /// The record type, e.g. A, AAAA, MX, TXT or TYPE65.
    #[arg(value_name = "TYPE", default_value = "A", value_parser = parse_rtype)]
    qtype: RType,
    /// The upstream to ask: tls://HOST[:PORT], https://HOST[:PORT]/PATH, udp://IP[:PORT] or
    /// tcp://IP[:PORT] (default: the embedded config's first upstream).
    #[arg(long, value_name = "URL")]
    upstream: Option<UpstreamUrl>,
    /// Extra PEM CA trusted for the upstream.
    #[arg(long, alias = "ca-file", value_name = "FILE", requires = "upstream")]
    ca: Option<PathBuf>,
    /// Address to connect to when the upstream's host is a name (repeatable; never resolved).
    #[arg(long, value_name = "IP", requires = "upstream")]
    bootstrap: Vec<std::net::IpAddr>,
    /// Alone: set the DO bit (ask for DNSSEC records). `--dnssec validate`: also validate the
    /// answer and print the verdict (exit 1 when bogus); `--dnssec off`: neither.
    #[arg(long, value_name = "validate|off", num_args = 0..=1, default_missing_value = "do",
          value_parser = parse_query_dnssec)]
    dnssec: Option<QueryDnssec>,
    /// Trust anchor file for --dnssec validate (repeatable; default: the built-in IANA root
    /// anchors).
    #[arg(long, value_name = "FILE")]
    trust_anchor: Vec<PathBuf>,
    /// Use TCP instead of UDP for a udp:// upstream.
    #[arg(long)]
    tcp: bool,
    /// Give up after this many milliseconds.
    #[arg(long, value_name = "MS", default_value_t = 5000,
          value_parser = clap::value_parser!(u64).range(100..=60_000))]
    timeout_ms: u64,
}

/// `dnsveil run`: each flag given replaces the corresponding config setting.
#[derive(Args, Debug)]
struct RunArgs {
    /// Config file (TOML). Without it the embedded default is used.
    #[arg(short, long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Listen on this address, UDP and TCP (repeatable; replaces server.listen).
    #[arg(long, value_name = "ADDR:PORT")]
    listen: Vec<SocketAddr>,
    /// Upstream server: udp://IP[:PORT], tcp://IP[:PORT], tls://HOST[:PORT] or
    /// https://HOST[:PORT]/PATH (repeatable; replaces upstream.servers).
    #[arg(long, value_name = "URL")]
    upstream: Vec<UpstreamUrl>,
    /// Worker threads; 0 = one per CPU core (replaces server.threads).
    #[arg(long, value_name = "N",
          value_parser = clap::value_parser!(u64).range(knob::THREADS.min..=knob::THREADS.max))]
    threads: Option<u64>,
    /// Cache capacity in entries; 0 disables the cache (replaces cache.size).
    #[arg(long, value_name = "N",
          value_parser = clap::value_parser!(u64).range(knob::CACHE_SIZE.min..=knob::CACHE_SIZE.max))]
    cache_size: Option<u64>,
    /// Answer from expired cache data when the upstreams fail or are late: on or off (replaces
    /// cache.serve_stale).
    #[arg(long, value_name = "on|off", value_parser = parse_on_off)]
    serve_stale: Option<bool>,
    /// Refresh popular cache entries before they expire: on or off (replaces cache.prefetch).
    #[arg(long, value_name = "on|off", value_parser = parse_on_off)]
    prefetch: Option<bool>,
    /// Save the cache to this file and restore it at start; "" for none (replaces
    /// cache.cache_file).
    #[arg(long, value_name = "PATH", value_parser = parse_path_or_empty)]
    cache_file: Option<PathBuf>,
    /// Client network allowed to query, e.g. 192.168.0.0/16 (repeatable; replaces server.allow).
    #[arg(long, value_name = "CIDR")]
    allow: Vec<Cidr>,
    /// Hosts file to serve; "" for none (replaces hosts.file).
    #[arg(long, value_name = "FILE", value_parser = parse_path_or_empty)]
    hosts: Option<PathBuf>,
    /// Extra PEM CA trusted for the --upstream servers.
    #[arg(long, value_name = "FILE")]
    ca_file: Option<PathBuf>,
    /// Address to connect to for --upstream URLs with a host name (repeatable; never resolved).
    #[arg(long, value_name = "IP")]
    bootstrap: Vec<std::net::IpAddr>,
    /// Upstream selection: fastest, ordered or parallel (replaces upstream.strategy).
    #[arg(long, value_name = "STRATEGY", value_parser = parse_strategy)]
    strategy: Option<Strategy>,
    /// Log level: error, warn, info, debug or trace (RUST_LOG, if set, wins).
    #[arg(long, value_name = "LEVEL", value_parser = parse_log_level)]
    log_level: Option<LogLevel>,
    /// Log every query (off by default for privacy).
    #[arg(long)]
    log_queries: bool,
    /// UDP queries per second each client network may send; 0 = off (replaces
    /// server.rate_limit).
    #[arg(long, value_name = "QPS",
          value_parser = clap::value_parser!(u64).range(knob::RATE_LIMIT.min..=knob::RATE_LIMIT.max))]
    rate_limit: Option<u64>,
    /// Block list: a file or an https:// URL (repeatable; replaces block.lists).
    #[arg(long, value_name = "FILE|URL")]
    blocklist: Vec<String>,
    /// Allow list file: its names are never blocked (repeatable; replaces block.allow).
    #[arg(long, value_name = "FILE")]
    allowlist: Vec<String>,
    /// Serve Prometheus metrics at http://ADDR:PORT/metrics (replaces metrics.listen).
    #[arg(long, value_name = "ADDR:PORT")]
    metrics: Option<SocketAddr>,
    /// The control socket's path; "" for none (replaces server.control_socket).
    #[arg(long, value_name = "PATH", value_parser = parse_path_or_empty)]
    control_socket: Option<PathBuf>,
    /// DNSSEC validation: validate or off (replaces resolver.dnssec).
    #[arg(long, value_name = "validate|off", value_parser = parse_dnssec_mode)]
    dnssec: Option<DnssecMode>,
    /// Trust anchor file: DS or DNSKEY records in zone-file form (repeatable; replaces
    /// resolver.trust_anchor; default: the built-in IANA root anchors).
    #[arg(long, value_name = "FILE")]
    trust_anchor: Vec<PathBuf>,
    /// Zone not to validate, a negative trust anchor (repeatable; replaces
    /// resolver.insecure_domains).
    #[arg(long, value_name = "NAME", value_parser = parse_name)]
    insecure_domain: Vec<Name>,
    /// forward (to the upstreams) or recursive (resolve from the root); replaces resolver.mode.
    #[arg(long, value_name = "forward|recursive", value_parser = parse_mode)]
    mode: Option<Mode>,
    /// Root hints file in named.root format, replacing the embedded hints (replaces
    /// resolver.root_hints).
    #[arg(long, value_name = "FILE")]
    root_hints: Option<PathBuf>,
    /// Port of the authoritative servers in recursive mode (replaces resolver.query_port).
    #[arg(long, value_name = "N",
          value_parser = clap::value_parser!(u64).range(knob::QUERY_PORT.min..=knob::QUERY_PORT.max))]
    query_port: Option<u64>,
    /// 0x20 case randomisation of queries to authoritative servers in recursive mode (replaces
    /// resolver.qname_case_randomization).
    #[arg(long, value_name = "on|off", value_parser = parse_on_off)]
    qname_case_randomization: Option<bool>,
}

fn parse_mode(s: &str) -> Result<Mode, String> {
    s.parse()
}

fn parse_dnssec_mode(s: &str) -> Result<DnssecMode, String> {
    s.parse()
}

/// What `dnsveil query --dnssec[=MODE]` asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum QueryDnssec {
    /// `--dnssec` alone: the DO bit.
    DoBit,
    Mode(DnssecMode),
}

fn parse_query_dnssec(s: &str) -> Result<QueryDnssec, String> {
    match s {
        "do" => Ok(QueryDnssec::DoBit),
        _ => s.parse().map(QueryDnssec::Mode),
    }
}

/// A path where "" is meaningful (clap's own path parser rejects empty values).
fn parse_path_or_empty(s: &str) -> Result<PathBuf, std::convert::Infallible> {
    Ok(PathBuf::from(s))
}

fn parse_name(s: &str) -> Result<Name, String> {
    s.parse().map_err(|e| format!("{e}"))
}

fn parse_rtype(s: &str) -> Result<RType, String> {
    s.parse().map_err(|e| format!("{e}"))
}

fn parse_on_off(s: &str) -> Result<bool, String> {
    match s {
        "on" => Ok(true),
        "off" => Ok(false),
        _ => Err(format!("{s:?} is not on or off")),
    }
}

fn parse_strategy(s: &str) -> Result<Strategy, String> {
    s.parse()
}

fn parse_log_level(s: &str) -> Result<LogLevel, String> {
    s.parse()
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Run(args) => run(*args),
        Command::CheckConfig { file } => check_config(&file),
        Command::Query(args) => query(args),
        Command::Why(args) => why(args),
        Command::Stats(c) => control_command(&c, "stats"),
        Command::Flush { name, control } => match name {
            Some(n) => control_command(&control, &format!("flush {n}")),
            None => control_command(&control, "flush"),
        },
        Command::Reload(c) => control_command(&c, "reload"),
        Command::Portal { minutes, control } => {
            control_command(&control, &format!("portal {minutes}"))
        }
        Command::Manpage { dir } => manpage(&dir),
        Command::Completions { shell } => {
            let mut cmd = Cli::command();
            clap_complete::generate(shell, &mut cmd, "dnsveil", &mut std::io::stdout());
            ExitCode::SUCCESS
        }
    }
}

/// The sections of dnsveil.8 that clap does not know (roff).
const MANPAGE_SECTIONS: &str = r#".SH FILES
.TP
\fI/etc/dnsveil/dnsveil.toml\fR
The configuration file of the packaged service (every key is described in it); check it with
\fBdnsveil check\-config\fR.
.TP
\fI/var/lib/dnsveil/cache.bin\fR
The cache, kept across restarts (\fBcache.cache_file\fR).
.TP
\fI/lib/systemd/system/dnsveil.service\fR, \fI/lib/systemd/system/dnsveil.socket\fR
The systemd units: the service (Type=notify, hardened), and the sockets on 127.0.0.1:53 and [::1]:53
that systemd can open for it.
.SH SIGNALS
.TP
\fBSIGHUP\fR
Reload: read the configuration again (the same file and command\-line flags) and, if it checks,
swap in its upstreams, forwarding rules, allow list, local records, hosts file and cache policy,
keeping the sockets and the cached answers. A configuration that does not check is refused with a
logged error and the running one stays. \fBdnsveil reload\fR does the same over the control socket
and waits for the outcome; \fBsystemctl reload dnsveil\fR runs it.
.TP
\fBSIGTERM\fR, \fBSIGINT\fR
Stop gracefully (queries in flight are answered, the cache file is saved); a second one stops at
once.
.SH ENVIRONMENT
.TP
\fBRUST_LOG\fR
A log filter: a level and \fItarget=level\fR directives (e.g. \fIdnsveil=debug,hyper=warn\fR); it overrides \fBlog.level\fR.
.TP
\fBNO_COLOR\fR
No colours in the log, even on a terminal.
.TP
\fBNOTIFY_SOCKET\fR, \fBWATCHDOG_USEC\fR
Set by systemd: readiness, reload, stop and watchdog notifications (sd_notify).
.TP
\fBLISTEN_FDS\fR, \fBLISTEN_PID\fR, \fBLISTEN_FDNAMES\fR
Set by systemd for socket activation: the passed sockets are served.
.TP
\fBJOURNAL_STREAM\fR
Set by systemd when standard error is the journal: log lines then carry syslog priorities and no
time stamp.
.SH "EXIT STATUS"
.TP
\fB0\fR
Success.
.TP
\fB1\fR
A runtime failure (a listener cannot be bound), a configuration that cannot run
(\fBcheck\-config\fR), or no answer (\fBquery\fR).
.TP
\fB2\fR
A usage error.
.TP
\fB78\fR
A configuration error in \fBrun\fR, reported before anything starts (EX_CONFIG; the unit does not
restart on it).
.SH "SEE ALSO"
\fBsystemd.socket\fR(5), \fBresolved.conf\fR(5), \fBresolvectl\fR(1), \fBNetworkManager.conf\fR(5),
\fBresolv.conf\fR(5); the README in /usr/share/doc/dnsveil.
"#;

/// `dnsveil manpage DIR`: dnsveil.8 and a page per command (dnsveil-run.8, ...), from the same
/// definitions as `--help`.
fn manpage(dir: &std::path::Path) -> ExitCode {
    fn write_pages(dir: &std::path::Path) -> std::io::Result<Vec<PathBuf>> {
        std::fs::create_dir_all(dir)?;
        let mut cmd = Cli::command().disable_help_subcommand(true);
        cmd.build();
        let mut pages = Vec::new();
        let page = |command: clap::Command| {
            clap_mangen::Man::new(command)
                .section("8")
                .manual("System Manager's Manual")
        };
        // dnsveil.8: clap's sections, then ours (files, signals, environment, exit status).
        let main = page(cmd.clone());
        let path = dir.join(main.get_filename());
        let mut out = Vec::new();
        main.render_title(&mut out)?;
        main.render_name_section(&mut out)?;
        main.render_synopsis_section(&mut out)?;
        main.render_description_section(&mut out)?;
        main.render_options_section(&mut out)?;
        main.render_subcommands_section(&mut out)?;
        out.extend_from_slice(MANPAGE_SECTIONS.as_bytes());
        main.render_version_section(&mut out)?;
        std::fs::write(&path, out)?;
        pages.push(path);
        for command in cmd.get_subcommands().cloned() {
            pages.push(page(command).generate_to(dir)?);
        }
        Ok(pages)
    }
    match write_pages(dir) {
        Ok(pages) => {
            for page in pages {
                println!("{}", page.display());
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!(
                "dnsveil: cannot write the manual pages into {}: {e}",
                dir.display()
            );
            ExitCode::FAILURE
        }
    }
}

/// `dnsveil why`: prints the verdict and its rules; exit 78 on a config error.
fn why(args: WhyArgs) -> ExitCode {
    init_tracing(LogLevel::Error);
    let config = match &args.config {
        Some(path) => Config::load(path),
        None => Config::embedded(),
    };
    let config = config.and_then(|mut c| {
        c.apply(Overrides {
            blocklists: args.blocklist,
            allowlists: args.allowlist,
            ..Overrides::default()
        })?;
        Ok(c)
    });
    let config = match config {
        Ok(c) => c,
        Err(e) => {
            eprintln!("dnsveil: config error: {e}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    let settings = dnsveil::app::block_settings(&config);
    match dnsveil::block::why::explain(&settings, &args.name) {
        Ok(text) => {
            print!("{text}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("dnsveil: config error: {e}");
            ExitCode::from(EXIT_CONFIG)
        }
    }
}

/// Sends `command` to the control socket and prints the reply: exit 0 on `ok`, 1 otherwise.
fn control_command(args: &ControlArgs, command: &str) -> ExitCode {
    let path = match args.control_socket.clone().or_else(control::default_path) {
        Some(p) => p,
        None => {
            fail(&format!("dnsveil: {}", control::ControlError::NoDefault));
            return ExitCode::FAILURE;
        }
    };
    match control::ask(&path, command) {
        Ok(text) => {
            print!("{text}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            fail(&format!("dnsveil: {command}: {e}"));
            ExitCode::FAILURE
        }
    }
}

/// `dnsveil query`: prints the answer on stdout, or the failure on stderr with exit status 1.
fn query(args: QueryArgs) -> ExitCode {
    init_tracing(LogLevel::Warn);
    let timeout = Duration::from_millis(args.timeout_ms);
    let spec = match args.upstream {
        Some(url) => {
            let url = match url {
                UpstreamUrl::Udp(addr) if args.tcp => UpstreamUrl::Tcp(addr),
                other => other,
            };
            Ok(query::spec_for(url, &args.bootstrap, args.ca, timeout))
        }
        None => query::default_spec(timeout),
    };
    let result = spec.and_then(|spec| {
        let validate = match args.dnssec {
            Some(QueryDnssec::Mode(DnssecMode::Validate)) => Some(
                dnsveil::validate::load_anchors(&args.trust_anchor)
                    .map_err(query::QueryError::Validation)?,
            ),
            _ => None,
        };
        let opts = query::QueryOptions {
            name: args.name,
            qtype: args.qtype,
            spec,
            dnssec: args.dnssec == Some(QueryDnssec::DoBit),
            validate,
        };
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(query::QueryError::Runtime)?;
        runtime.block_on(query::run(&opts))
    });
    match result {
        Ok(outcome) => {
            print!("{}", query::format(&outcome));
            match outcome.verdict {
                Some(dnsveil::handler::Verdict::Bogus(_)) => ExitCode::FAILURE,
                _ => ExitCode::SUCCESS,
            }
        }
        Err(e) => {
            eprintln!("dnsveil: query failed: {e}");
            ExitCode::FAILURE
        }
    }
}

fn check_config(file: &std::path::Path) -> ExitCode {
    // Warnings about the hosts file's lines come through tracing.
    init_tracing(LogLevel::Warn);
    let config = match Config::load(file).and_then(|c| c.check_runnable().map(|()| c)) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("dnsveil: config error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let plan = match Plan::build(config) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("dnsveil: config error: {}: {e}", file.display());
            return ExitCode::FAILURE;
        }
    };
    let config = plan.config();
    println!("{}: ok", file.display());
    print!("{}", config.summary());
    for w in config.warnings() {
        println!("warning: {w}");
    }
    ExitCode::SUCCESS
}

fn run(args: RunArgs) -> ExitCode {
    let source = source(args);
    let config = match source() {
        Ok(c) => c,
        Err(e) => {
            fail(&format!("dnsveil: config error: {e}"));
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    init_tracing(config.log.level);
    for w in config.warnings() {
        tracing::warn!("{w}");
    }
    // Before any thread starts: this takes descriptors over and edits the environment.
    let activated = match Activated::from_env() {
        Ok(a) => a,
        Err(e) => {
            fail(&format!("dnsveil: error: {e}"));
            return ExitCode::FAILURE;
        }
    };
    let plan = match Plan::build(config) {
        Ok(p) => p.reloading_from(source),
        Err(e) => {
            fail(&format!("dnsveil: config error: {e}"));
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    match serve(plan, activated) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            fail(&format!("dnsveil: error: {}", describe(&e)));
            ExitCode::FAILURE
        }
    }
}

/// Writes `message` to stderr, with the journal's error priority when stderr is the journal
/// (`run` under systemd, `dnsveil reload` as ExecReload=): `journalctl -p err` shows it.
fn fail(message: &str) {
    eprint!(
        "{}",
        journal::error_lines(message, journal::stderr_is_journal())
    );
}

/// `e` and its causes, as `{:#}` shows them, less each cause the message before it already
/// quotes (a bind error's message names its I/O error and says how to fix it).
fn describe(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if out.contains(&text) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&text);
    }
    out
}

/// How `run` reads its configuration, at start and at each reload: the config file (or the
/// embedded default) with the command-line flags applied, checked as `check-config` checks it.
fn source(args: RunArgs) -> ConfigSource {
    let path = args.config;
    let overrides = Overrides {
        listen: args.listen,
        allow: args.allow,
        upstreams: args.upstream,
        bootstrap: args.bootstrap,
        ca_file: args.ca_file,
        strategy: args.strategy,
        threads: args.threads,
        cache_size: args.cache_size,
        serve_stale: args.serve_stale,
        prefetch: args.prefetch,
        cache_file: args.cache_file,
        hosts: args.hosts,
        log_level: args.log_level,
        log_queries: args.log_queries,
        rate_limit: args.rate_limit,
        blocklists: args.blocklist,
        allowlists: args.allowlist,
        metrics: args.metrics,
        control_socket: args.control_socket,
        dnssec: args.dnssec,
        trust_anchors: args.trust_anchor,
        insecure_domains: args.insecure_domain,
        mode: args.mode,
        root_hints: args.root_hints,
        query_port: args.query_port,
        qname_case_randomization: args.qname_case_randomization,
    };
    Arc::new(move || {
        let mut config = match &path {
            Some(path) => Config::load(path)?,
            None => Config::embedded()?,
        };
        config.apply(overrides.clone())?;
        config.check_runnable()?;
        Ok(config)
    })
}

/// Logs go to stderr, coloured only on a terminal (and not with NO_COLOR); when stderr is the
/// systemd journal (`JOURNAL_STREAM`), in the journal's format instead (`dnsveil::journal`).
/// RUST_LOG, when set, non-empty and valid, overrides the configured level. It takes a level and
/// `target=level` directives (`dnsveil=debug,hyper=warn`): `Targets`, not `EnvFilter`, whose span
/// and field filters need a regex engine that was a tenth of the binary (issue 17's size budget).
fn init_tracing(level: LogLevel) {
    let from_env = std::env::var("RUST_LOG")
        .ok()
        .filter(|v| !v.trim().is_empty())
        .map(|v| v.parse::<Targets>().map_err(|e| (v, e)));
    let configured = Targets::new().with_default(level_filter(level));
    let (filter, bad_env) = match from_env {
        Some(Ok(f)) => (f, None),
        Some(Err(bad)) => (configured, Some(bad)),
        None => (configured, None),
    };
    let layer = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    if journal::stderr_is_journal() {
        let layer = layer
            .with_ansi(false)
            .event_format(journal::JournalFormat::default());
        tracing_subscriber::registry()
            .with(layer.with_filter(filter))
            .init();
    } else {
        let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
        let layer = layer.with_ansi(std::io::stderr().is_terminal() && !no_color);
        tracing_subscriber::registry()
            .with(layer.with_filter(filter))
            .init();
    }
    if let Some((value, e)) = bad_env {
        tracing::warn!("ignoring RUST_LOG={value:?}: {e}; using level {level}");
    }
}

fn level_filter(level: LogLevel) -> LevelFilter {
    match level {
        LogLevel::Error => LevelFilter::ERROR,
        LogLevel::Warn => LevelFilter::WARN,
        LogLevel::Info => LevelFilter::INFO,
        LogLevel::Debug => LevelFilter::DEBUG,
        LogLevel::Trace => LevelFilter::TRACE,
    }
}

/// Builds the runtime, installs the signal handlers and runs the app to completion.
fn serve(plan: Plan, activated: Activated) -> anyhow::Result<()> {
    raise_descriptor_limit();
    let threads = knob::worker_threads(plan.config().server.threads);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .thread_name("dnsveil-worker")
        .enable_all()
        .build()
        .context("cannot start the tokio runtime")?;
    let result = runtime.block_on(async {
        let shutdown = CancellationToken::new();
        let (reload_tx, reload_rx) = mpsc::channel(1);
        let signals = Signals::install().context("cannot install signal handlers")?;
        // Logged once the signal handlers are in place: from here SIGTERM is a graceful shutdown.
        tracing::info!(
            version = env!("CARGO_PKG_VERSION"),
            threads,
            "dnsveil starting"
        );
        tokio::spawn(signals.watch(shutdown.clone(), reload_tx));
        dnsveil::app::run(plan, activated, shutdown, reload_rx).await
    });
    runtime.shutdown_timeout(RUNTIME_SHUTDOWN_GRACE);
    result
}

/// Raises the soft limit on open files to the hard one: every client connection and every plain
/// upstream query holds a descriptor, and the common soft default (1,024) is far below what the
/// default limits need. The server then sizes its caps to what it got (`Server::bind`).
fn raise_descriptor_limit() {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    match getrlimit(Resource::RLIMIT_NOFILE) {
        Ok((soft, hard)) if soft < hard => {
            if let Err(e) = setrlimit(Resource::RLIMIT_NOFILE, hard, hard) {
                tracing::warn!(soft, hard, error = %e, "cannot raise the open-file limit");
            }
        }
        Ok(_) => {}
        Err(e) => tracing::warn!(error = %e, "cannot read the open-file limit"),
    }
}

/// The signals we act on, registered before the app starts so none is missed.
struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
    hup: tokio::signal::unix::Signal,
}

impl Signals {
    fn install() -> std::io::Result<Signals> {
        Ok(Signals {
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
            hup: signal(SignalKind::hangup())?,
        })
    }

    /// First SIGINT/SIGTERM: graceful shutdown. Second: exit now. SIGHUP: request a reload (requests
    /// arriving while one is pending are merged).
    async fn watch(mut self, shutdown: CancellationToken, reload: mpsc::Sender<()>) {
        loop {
            let (name, code) = tokio::select! {
                _ = self.term.recv() => ("SIGTERM", 128 + 15),
                _ = self.int.recv() => ("SIGINT", 128 + 2),
                _ = self.hup.recv() => {
                    tracing::info!("SIGHUP: reload requested");
                    let _ = reload.try_send(());
                    continue;
                }
            };
            if shutdown.is_cancelled() {
                tracing::warn!(signal = name, "second signal: exiting without draining");
                std::process::exit(code);
            }
            tracing::info!(signal = name, "shutting down");
            shutdown.cancel();
        }
    }
}

/// The C library's `pow`, provided by the binary itself so that `libm.so.6` is not loaded.
///
/// Nothing of dnsveil computes a power; the one caller is tokio's scheduler (`f64::powf` in the
/// smoothing of its task poll times), and that single import made the dynamic loader map and
/// relocate all of libm: about 0.5 MiB of resident memory in an idle process (issue 17's idle
/// budget, measured with benches/bench_small.py; BENCHMARKS.md). Defined here, the linker resolves
/// the call to this function and drops libm from the binary's needed libraries (`--as-needed`).
///
/// Why the lint allowance: exporting an unmangled symbol is `unsafe` in Rust because it can clash
/// with another definition of the same name; nothing else in the function is. This one replaces
/// libm's `pow` for the whole process, so it must be a complete `pow`: it is the `libm` crate's
/// (rust-lang's port of musl's, within 1 ulp, with the C standard's special cases), which differs
/// from glibc's only in not setting `errno`, which tokio does not read. The library crate keeps
/// `#![forbid(unsafe_code)]`.
#[allow(unsafe_code)]
#[no_mangle]
pub extern "C" fn pow(x: f64, y: f64) -> f64 {
    libm::pow(x, y)
}

#[cfg(test)]
mod tests {
    use std::io;

    use dnsveil::handler::Protocol;
    use dnsveil::server::ServerError;

    use super::*;

    fn bind_failure(addr: &str, kind: io::ErrorKind) -> String {
        describe(&anyhow::Error::from(ServerError::Bind {
            addr: addr.parse().unwrap(),
            proto: Protocol::Tcp,
            source: io::Error::from(kind),
        }))
    }

    /// The cause and the fix of a bind failure are printed once, and the command that finds the
    /// program holding the port names the port asked for.
    #[test]
    fn a_bind_failure_is_described_once_with_its_own_port() {
        let msg = bind_failure("127.0.0.1:5353", io::ErrorKind::AddrInUse);
        let cause = io::Error::from(io::ErrorKind::AddrInUse).to_string();
        assert_eq!(msg.matches(&cause).count(), 1, "{msg}");
        assert_eq!(msg.matches("another program").count(), 1, "{msg}");
        assert!(msg.contains("ss -lntup 'sport = :5353'"), "{msg}");
        assert!(!msg.contains(":53'"), "{msg}");
        assert!(msg.contains("5353"), "{msg}");

        let msg = bind_failure("[::1]:53", io::ErrorKind::AddrInUse);
        assert!(msg.contains("ss -lntup 'sport = :53'"), "{msg}");

        let msg = bind_failure("0.0.0.0:53", io::ErrorKind::PermissionDenied);
        assert_eq!(msg.matches("ports below 1024").count(), 1, "{msg}");
        assert_eq!(msg.matches("setcap").count(), 1, "{msg}");
    }

    #[test]
    fn causes_not_quoted_by_the_message_are_kept() {
        let e = anyhow::Error::from(io::Error::other("disk on fire")).context("cannot start");
        assert_eq!(describe(&e), "cannot start: disk on fire");
    }

    /// The `pow` this binary exports behaves as the C standard's, special cases included (whether
    /// the linker resolved tokio's call to it is tests/packaging.rs's `the_binary_does_not_load_libm`).
    #[test]
    fn pow_is_a_complete_c_pow() {
        let p = |x: f64, y: f64| super::pow(std::hint::black_box(x), std::hint::black_box(y));
        assert_eq!(p(2.0, 10.0), 1024.0);
        assert_eq!(p(0.5, 3.0), 0.125);
        assert_eq!(p(0.9, 0.0), 1.0);
        assert_eq!(p(f64::NAN, 0.0), 1.0);
        assert_eq!(p(1.0, f64::NAN), 1.0);
        assert!(p(-8.0, 1.0 / 3.0).is_nan());
        assert_eq!(p(0.0, -1.0), f64::INFINITY);
        assert_eq!(p(10.0, 400.0), f64::INFINITY);
        assert_eq!(p(0.5, 2000.0), 0.0);
        assert!((p(2.0, 0.5) - std::f64::consts::SQRT_2).abs() <= f64::EPSILON);
        // tokio's use: the weight of a batch of polls in a moving average.
        let w = 1.0 - p(1.0 - 0.1, 16.0);
        assert!((w - 0.814_697_981_114_816_6).abs() < 1e-15, "{w}");
        assert_eq!(p(3.0, 4.0), 81.0);
    }
}
