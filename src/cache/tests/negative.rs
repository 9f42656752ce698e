//! Negative answers (NXDOMAIN, NODATA: RFC 2308), SERVFAIL and what is not stored at all.

use super::*;

#[tokio::test(start_paused = true)]
async fn nxdomain_is_cached_for_the_soa_minimum() {
    let c = cache(CacheConfig {
        min_ttl: 1000, // does not raise negative answers
        ..CacheConfig::default()
    });
    let wire = response(
        "nope.example.com",
        RType::A,
        Rcode::NXDOMAIN,
        &[],
        &[rr("example.com", 3600, Data::Soa { minimum: 300 })],
    );
    c.insert_wire(&key("nope.example.com", RType::A, false, false), &wire)
        .unwrap();
    let q = query("nope.example.com", RType::A, 9);
    let out = fast(&c, &q, 512).unwrap();
    assert_eq!(
        Header::parse(&out).unwrap().rcode_low,
        Rcode::NXDOMAIN.low()
    );
    assert_eq!(ttls(&out), [(Section::Authority, RType::SOA, 300)]);
    advance(Duration::from_secs(300)).await;
    assert_eq!(
        ttls(&fast(&c, &q, 512).unwrap()),
        [(Section::Authority, RType::SOA, 0)]
    );
    advance(Duration::from_secs(1)).await;
    assert!(fast(&c, &q, 512).is_none());

    // The SOA's own TTL when it is the smaller; negative_max_ttl caps both.
    let c = default_cache();
    let wire = response(
        "nope.example.com",
        RType::A,
        Rcode::NXDOMAIN,
        &[],
        &[rr("example.com", 30, Data::Soa { minimum: 300 })],
    );
    c.insert_wire(&key("nope.example.com", RType::A, false, false), &wire)
        .unwrap();
    assert_eq!(ttls(&fast(&c, &q, 512).unwrap())[0].2, 30);
    let c = cache(CacheConfig {
        negative_max_ttl: 20,
        ..CacheConfig::default()
    });
    c.insert_wire(&key("nope.example.com", RType::A, false, false), &wire)
        .unwrap();
    assert_eq!(ttls(&fast(&c, &q, 512).unwrap())[0].2, 20);
}

#[tokio::test(start_paused = true)]
async fn nodata_is_cached_and_needs_an_soa() {
    let c = default_cache();
    let k = key("www.example.com", RType::AAAA, false, false);
    let q = query("www.example.com", RType::AAAA, 3);
    // NODATA after a CNAME: the answer holds no AAAA.
    let wire = response(
        "www.example.com",
        RType::AAAA,
        Rcode::NOERROR,
        &[rr("www.example.com", 600, Data::Cname("web.example.com"))],
        &[rr("example.com", 3600, Data::Soa { minimum: 120 })],
    );
    c.insert_wire(&k, &wire).unwrap();
    let out = fast(&c, &q, 512).unwrap();
    assert_eq!(
        ttls(&out),
        [
            (Section::Answer, RType::CNAME, 600),
            (Section::Authority, RType::SOA, 120)
        ]
    );
    advance(gone_after(120)).await;
    assert!(fast(&c, &q, 512).is_none());

    // Without an SOA, neither NODATA nor NXDOMAIN is cached.
    let bare = response("www.example.com", RType::AAAA, Rcode::NOERROR, &[], &[]);
    assert_eq!(
        c.insert_wire(&k, &bare),
        Err(Uncacheable::NegativeWithoutSoa)
    );
    let bare = response("www.example.com", RType::AAAA, Rcode::NXDOMAIN, &[], &[]);
    assert_eq!(
        c.insert_wire(&k, &bare),
        Err(Uncacheable::NegativeWithoutSoa)
    );
    // An SOA MINIMUM of zero means "do not cache".
    let zero = response(
        "www.example.com",
        RType::AAAA,
        Rcode::NXDOMAIN,
        &[],
        &[rr("example.com", 3600, Data::Soa { minimum: 0 })],
    );
    assert_eq!(c.insert_wire(&k, &zero), Err(Uncacheable::ZeroTtl));
}

/// An OPT record carrying one Extended DNS Error.
fn opt_with_ede(info: u16, text: &str) -> Vec<u8> {
    let mut o = vec![0, 0, 41, 0x04, 0xD0, 0, 0, 0, 0];
    o.extend_from_slice(&((6 + text.len()) as u16).to_be_bytes());
    o.extend_from_slice(&15u16.to_be_bytes());
    o.extend_from_slice(&((2 + text.len()) as u16).to_be_bytes());
    o.extend_from_slice(&info.to_be_bytes());
    o.extend_from_slice(text.as_bytes());
    o
}

#[tokio::test(start_paused = true)]
async fn servfail_is_cached_briefly_with_its_extended_error() {
    let c = cache(CacheConfig {
        servfail_ttl: 5,
        ..CacheConfig::default()
    });
    let h = Header {
        rcode_low: Rcode::SERVFAIL.low(),
        ..Header::default()
    };
    let opt = opt_with_ede(ede::NETWORK_ERROR, "upstream timed out");
    let wire = response_with(
        h,
        "www.example.com",
        RType::A,
        &[rr("www.example.com", 300, Data::A([192, 0, 2, 1]))],
        &[],
        Some(&opt),
    );
    c.insert_wire(&key("www.example.com", RType::A, false, false), &wire)
        .unwrap();

    // An EDNS client gets the SERVFAIL, no records, and the EDE in our OPT.
    let q = query_with("www.example.com", RType::A, 5, edns(false), false);
    let out = fast(&c, &q, 1232).unwrap();
    let hdr = Header::parse(&out).unwrap();
    assert_eq!(hdr.rcode_low, Rcode::SERVFAIL.low());
    assert_eq!((hdr.ancount, hdr.nscount, hdr.arcount), (0, 0, 1));
    let m = Message::parse(&out).unwrap();
    assert_eq!(
        m.edns.unwrap().options,
        [EdnsOption::ExtendedError {
            info_code: ede::NETWORK_ERROR,
            extra_text: "upstream timed out".into()
        }]
    );
    // A client without EDNS gets a plain SERVFAIL.
    let plain = fast(&c, &query("www.example.com", RType::A, 5), 512).unwrap();
    assert_eq!(Header::parse(&plain).unwrap().arcount, 0);
    assert_eq!(plain.len(), HEADER_LEN + 17 + 4);

    advance(gone_after(5)).await;
    assert!(fast(&c, &q, 1232).is_none());
}

#[tokio::test(start_paused = true)]
async fn chain_failure_is_cached_as_servfail() {
    let c = Arc::new(default_cache());
    let up = Upstream::new(|_| Err(HandlerError::upstream(timed_out())));
    let ch = chain(&c, &up);
    let req = request(msg_query("down.example", RType::A));
    match ch.handle(&req).await {
        Err(HandlerError::Upstream(e)) => assert_eq!(e.to_string(), "all upstreams timed out"),
        other => panic!("{other:?}"),
    }
    let cached = ch.handle(&req).await.unwrap().message().unwrap();
    assert_eq!(up.calls(), 1);
    assert_eq!(cached.rcode(), Rcode::SERVFAIL);
    assert_eq!(cached.header.id, 7);
    assert_eq!(
        cached.edns.unwrap().options,
        [EdnsOption::ExtendedError {
            info_code: ede::NETWORK_ERROR,
            extra_text: "all upstreams timed out".into()
        }]
    );
    advance(gone_after(DEFAULT_SERVFAIL_TTL)).await;
    assert!(ch.handle(&req).await.is_err());
    assert_eq!(up.calls(), 2);

    // Other failures are not cached.
    let c = Arc::new(default_cache());
    let up = Upstream::new(|_| Err(HandlerError::Refused(RefusalReason::Policy)));
    let ch = chain(&c, &up);
    assert!(ch.handle(&req).await.is_err());
    assert!(ch.handle(&req).await.is_err());
    assert_eq!(up.calls(), 2);
    assert!(c.is_empty());
}

#[tokio::test(start_paused = true)]
async fn uncacheable_responses_are_not_stored() {
    let c = default_cache();
    let k = key("www.example.com", RType::A, false, false);
    let truncated = response_with(
        Header {
            truncated: true,
            ..Header::default()
        },
        "www.example.com",
        RType::A,
        &[],
        &[],
        None,
    );
    assert_eq!(c.insert_wire(&k, &truncated), Err(Uncacheable::Truncated));
    let refused = response("www.example.com", RType::A, Rcode::REFUSED, &[], &[]);
    assert_eq!(
        c.insert_wire(&k, &refused),
        Err(Uncacheable::Rcode(Rcode::REFUSED))
    );
    assert_eq!(
        c.insert_wire(&k, &a_response("www.example.com", 0)),
        Err(Uncacheable::ZeroTtl)
    );
    assert_eq!(
        c.insert_wire(&k, &a_response("other.example.com", 60)),
        Err(Uncacheable::QuestionMismatch)
    );
    // An extended RCODE (BADVERS: upper bits in OPT) is not NOERROR.
    let mut opt = vec![0, 0, 41, 0x04, 0xD0, 1, 0, 0, 0, 0, 0];
    let badvers = response_with(
        Header::default(),
        "www.example.com",
        RType::A,
        &[],
        &[],
        Some(&opt),
    );
    assert_eq!(
        c.insert_wire(&k, &badvers),
        Err(Uncacheable::Rcode(Rcode::BADVERS))
    );
    opt[5] = 0;
    let ch = Key::new(name("x.").as_wire(), RType::A, Class::CH, false, false).unwrap();
    assert_eq!(
        c.insert_wire(&ch, &a_response("x.", 60)),
        Err(Uncacheable::Question)
    );
    let huge: Vec<Rr> = (0..5000)
        .map(|i| {
            rr(
                "www.example.com",
                60,
                Data::A([10, 0, (i >> 8) as u8, i as u8]),
            )
        })
        .collect();
    let huge = response("www.example.com", RType::A, Rcode::NOERROR, &huge, &[]);
    assert!(huge.len() > policy::MAX_STORED_LEN);
    assert_eq!(c.insert_wire(&k, &huge), Err(Uncacheable::TooLarge));
    let any = key("www.example.com", RType::ANY, false, false);
    assert_eq!(
        c.insert_wire(&any, &a_response("www.example.com", 60)),
        Err(Uncacheable::Question)
    );
    assert!(c.is_empty());
}
