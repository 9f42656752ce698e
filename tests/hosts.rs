//! The hosts/local-records handler through the handler chain: answers, NODATA, PTR, pass-through,
//! reload and the file watcher. Everything stays in typed messages (no wire encoding), so none of
//! these tests needs the RData codec.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use dnsveil::handler::{
    local_answer, BoxFuture, Chain, Handler, HandlerResult, Next, Protocol, Request,
};
use dnsveil::hosts::{Hosts, HostsConfig, HostsError};
use dnsveil::wire::{Class, Message, Name, RData, RType, Rcode, Record};

/// The stage after hosts: answers everything REFUSED, so a test can see a query was passed on.
struct Upstream;

impl Handler for Upstream {
    fn handle<'a>(&'a self, req: &'a Request, _next: Next<'a>) -> BoxFuture<'a, HandlerResult> {
        let mut m = Message::response_to(&req.query);
        m.set_rcode(Rcode::REFUSED);
        Box::pin(std::future::ready(local_answer(&m)))
    }
    fn name(&self) -> &'static str {
        "upstream-marker"
    }
}

const HOSTS: &str = "\
# test hosts file
127.0.0.1   localhost
::1         localhost ip6-localhost
192.168.1.1 router.lan router
192.168.1.20 nas.lan
192.168.1.20 files.lan
2001:db8::20 nas.lan
not-an-ip   broken.lan
10.9.9.9    v4only.lan
";

fn name(s: &str) -> Name {
    s.parse().unwrap()
}

fn write_file(path: &Path, text: &str) {
    let mut f = std::fs::File::create(path).unwrap();
    f.write_all(text.as_bytes()).unwrap();
    f.sync_all().unwrap();
}

fn hosts_with(path: &Path, records: Vec<Record>) -> Arc<Hosts> {
    Arc::new(
        Hosts::new(HostsConfig {
            file: Some(path.to_path_buf()),
            records,
            ttl: 0,
        })
        .unwrap(),
    )
}

async fn ask(hosts: &Arc<Hosts>, qname: &str, qtype: RType) -> Message {
    let chain = Chain::new(vec![hosts.clone(), Arc::new(Upstream)]);
    let mut query = Message::query(name(qname), qtype);
    query.header.id = 99;
    let req = Request {
        query,
        client: Some("127.0.0.1:5000".parse().unwrap()),
        protocol: Protocol::Udp,
    };
    chain.handle(&req).await.unwrap().message().unwrap()
}

fn data(m: &Message) -> Vec<RData> {
    m.answers.iter().map(|r| r.data.clone()).collect()
}

#[tokio::test]
async fn answers_addresses_nodata_and_ptr() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hosts");
    write_file(&path, HOSTS);
    let hosts = hosts_with(&path, Vec::new());

    let m = ask(&hosts, "Router.LAN", RType::A).await;
    assert_eq!(m.rcode(), Rcode::NOERROR);
    assert_eq!(m.header.id, 99);
    assert!(m.header.response && m.header.recursion_available && !m.header.authoritative);
    assert_eq!(data(&m), [RData::A([192, 168, 1, 1].into())]);
    assert_eq!(m.answers[0].ttl, 0);

    let m = ask(&hosts, "nas.lan", RType::AAAA).await;
    assert_eq!(data(&m), [RData::Aaaa("2001:db8::20".parse().unwrap())]);

    // Known name, other family or type: NODATA, not passed upstream.
    for qtype in [RType::AAAA, RType::MX, RType::TXT] {
        let m = ask(&hosts, "v4only.lan", qtype).await;
        assert_eq!(m.rcode(), Rcode::NOERROR, "{qtype}");
        assert!(m.answers.is_empty(), "{qtype}");
    }

    // Reverse lookups name the first name listed for the address.
    let m = ask(&hosts, "1.1.168.192.in-addr.arpa", RType::PTR).await;
    assert_eq!(data(&m), [RData::Ptr(name("router.lan"))]);
    let m = ask(&hosts, "20.1.168.192.in-addr.arpa", RType::PTR).await;
    assert_eq!(data(&m), [RData::Ptr(name("nas.lan"))]);
    let m = ask(
        &hosts,
        "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.ip6.arpa",
        RType::PTR,
    )
    .await;
    assert_eq!(data(&m), [RData::Ptr(name("localhost"))]);

    // Unknown names, the skipped line's name, and other classes go on down the chain.
    for qname in [
        "example.com",
        "lan",
        "broken.lan",
        "2.1.168.192.in-addr.arpa",
    ] {
        assert_eq!(
            ask(&hosts, qname, RType::A).await.rcode(),
            Rcode::REFUSED,
            "{qname}"
        );
    }
    let chain = Chain::new(vec![hosts.clone(), Arc::new(Upstream)]);
    let mut query = Message::query(name("router.lan"), RType::A);
    query.questions[0].qclass = Class::CH;
    let req = Request {
        query,
        client: Some("127.0.0.1:5000".parse().unwrap()),
        protocol: Protocol::Tcp,
    };
    assert_eq!(chain.handle(&req).await.unwrap().rcode(), Rcode::REFUSED);
}

#[tokio::test]
async fn local_records_answer_by_name_and_type() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hosts");
    write_file(&path, HOSTS);
    let records = vec![
        Record::new(name("www.lan"), 120, RData::Cname(name("nas.lan"))),
        Record::new(
            name("printer.lan"),
            3600,
            RData::A([192, 168, 1, 30].into()),
        ),
        Record::new(
            name("_ipp._tcp.lan"),
            3600,
            RData::Srv {
                priority: 0,
                weight: 0,
                port: 631,
                target: name("printer.lan"),
            },
        ),
    ];
    let hosts = hosts_with(&path, records);

    let m = ask(&hosts, "printer.lan", RType::A).await;
    assert_eq!(data(&m), [RData::A([192, 168, 1, 30].into())]);
    assert_eq!(m.answers[0].ttl, 3600);
    assert!(ask(&hosts, "printer.lan", RType::AAAA)
        .await
        .answers
        .is_empty());
    assert_eq!(
        ask(&hosts, "_ipp._tcp.lan", RType::SRV).await.answers.len(),
        1
    );

    // A CNAME answers every type, followed by the local data of its target.
    let m = ask(&hosts, "www.lan", RType::AAAA).await;
    assert_eq!(
        data(&m),
        [
            RData::Cname(name("nas.lan")),
            RData::Aaaa("2001:db8::20".parse().unwrap())
        ]
    );
    let m = ask(&hosts, "www.lan", RType::MX).await;
    assert_eq!(data(&m), [RData::Cname(name("nas.lan"))]);
}

#[tokio::test]
async fn records_without_a_file() {
    let hosts = Arc::new(
        Hosts::new(HostsConfig {
            file: None,
            records: vec![Record::new(
                name("x.lan"),
                5,
                RData::A([10, 0, 0, 1].into()),
            )],
            ttl: 0,
        })
        .unwrap(),
    );
    assert_eq!(ask(&hosts, "x.lan", RType::A).await.answers.len(), 1);
    assert_eq!(ask(&hosts, "y.lan", RType::A).await.rcode(), Rcode::REFUSED);
    hosts.reload().unwrap();
}

#[tokio::test]
async fn a_missing_file_is_an_error_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let err = Hosts::new(HostsConfig {
        file: Some(dir.path().join("absent")),
        ..HostsConfig::default()
    })
    .err()
    .unwrap();
    assert!(matches!(err, HostsError::Read { .. }), "{err}");
}

#[tokio::test]
async fn reload_swaps_the_table_and_keeps_it_on_failure() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hosts");
    write_file(&path, "10.0.0.1 box.lan\n");
    let hosts = hosts_with(&path, Vec::new());
    assert_eq!(
        data(&ask(&hosts, "box.lan", RType::A).await),
        [RData::A([10, 0, 0, 1].into())]
    );

    write_file(&path, "10.0.0.2 box.lan\n10.0.0.3 new.lan\n");
    let mut reloads = hosts.reloads();
    hosts.reload().unwrap();
    assert_eq!(*reloads.borrow_and_update(), 1);
    assert_eq!(
        data(&ask(&hosts, "box.lan", RType::A).await),
        [RData::A([10, 0, 0, 2].into())]
    );
    assert_eq!(ask(&hosts, "new.lan", RType::A).await.answers.len(), 1);

    // The file disappears: the reload fails and the last good table stays.
    std::fs::remove_file(&path).unwrap();
    assert!(hosts.reload().is_err());
    assert!(!reloads.has_changed().unwrap());
    assert_eq!(ask(&hosts, "new.lan", RType::A).await.answers.len(), 1);
}

#[tokio::test]
async fn the_watcher_reloads_a_changed_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hosts");
    write_file(&path, "10.0.0.1 box.lan\n");
    let hosts = hosts_with(&path, Vec::new());
    let mut reloads = hosts.reloads();
    let shutdown = CancellationToken::new();
    let watcher = hosts
        .clone()
        .spawn_watcher(shutdown.clone(), Duration::from_millis(20));

    // Replace the file the way editors do: write a new one and rename it over the old.
    let tmp = dir.path().join("hosts.new");
    write_file(&tmp, "10.0.0.7 box.lan\n10.0.0.8 other.lan\n");
    std::fs::rename(&tmp, &path).unwrap();

    tokio::time::timeout(Duration::from_secs(10), reloads.changed())
        .await
        .expect("the watcher reloads within 10 s")
        .unwrap();
    assert_eq!(
        data(&ask(&hosts, "box.lan", RType::A).await),
        [RData::A([10, 0, 0, 7].into())]
    );

    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(5), watcher)
        .await
        .expect("the watcher stops on shutdown")
        .unwrap();
}
