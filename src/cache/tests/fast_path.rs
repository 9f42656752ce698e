//! The key (DO, CD, type, case) and the bytes the fast path writes: ID, question case, truncation
//! with additional and authority records, the AD bit.

use super::*;

#[tokio::test(start_paused = true)]
async fn key_separates_do_cd_and_type_and_ignores_case() {
    let c = default_cache();
    c.insert_wire(
        &key("www.example.com", RType::A, false, false),
        &a_response("WWW.Example.com", 60),
    )
    .unwrap();
    let mixed = query("wWw.ExAmPlE.cOm", RType::A, 1);
    let out = fast(&c, &mixed, 512).expect("case-insensitive hit");
    // The question echoes the client's spelling.
    assert_eq!(
        &out[HEADER_LEN..HEADER_LEN + 17],
        &mixed[HEADER_LEN..HEADER_LEN + 17]
    );
    assert!(fast(&c, &query("www.example.com", RType::AAAA, 1), 512).is_none());
    assert!(fast(
        &c,
        &query_with("www.example.com", RType::A, 1, edns(true), false),
        512
    )
    .is_none());
    assert!(fast(
        &c,
        &query_with("www.example.com", RType::A, 1, edns(false), false),
        512
    )
    .is_some());
    assert!(fast(
        &c,
        &query_with("www.example.com", RType::A, 1, None, true),
        512
    )
    .is_none());
}

#[tokio::test(start_paused = true)]
async fn fast_path_output_is_byte_exact() {
    let c = default_cache();
    let upstream = a_response("www.example.com", 300);
    c.insert_wire(&key("www.example.com", RType::A, true, false), &upstream)
        .unwrap();
    advance(Duration::from_secs(10)).await;
    let q = query_with("WWW.example.COM", RType::A, 0xBEEF, edns(true), false);
    let out = fast(&c, &q, 4096).unwrap();

    let mut expected = upstream.clone();
    expected[0..2].copy_from_slice(&0xBEEFu16.to_be_bytes());
    expected[2] = 0x81; // QR, RD (AA cleared)
    expected[3] = 0x80; // RA
    expected[10..12].copy_from_slice(&1u16.to_be_bytes()); // ARCOUNT: our OPT
    expected[HEADER_LEN..HEADER_LEN + 17].copy_from_slice(&q[HEADER_LEN..HEADER_LEN + 17]);
    let ttl_at = scan::records(&upstream).unwrap()[0].ttl_offset;
    expected[ttl_at..ttl_at + 4].copy_from_slice(&290u32.to_be_bytes());
    expected.extend_from_slice(&[0, 0, 41, 0x04, 0xD0, 0, 0, 0x80, 0, 0, 0]);
    assert_eq!(out, expected);

    // Without EDNS: no OPT, ARCOUNT 0, RD as the client sent it.
    let mut plain_q = query("www.example.com", RType::A, 2);
    plain_q[2] &= !0x01; // RD=0
    let c2 = default_cache();
    c2.insert_wire(&key("www.example.com", RType::A, false, false), &upstream)
        .unwrap();
    let out = fast(&c2, &plain_q, 512).unwrap();
    assert_eq!(out.len(), upstream.len());
    let h = Header::parse(&out).unwrap();
    assert!(!h.recursion_desired && !h.authoritative && h.response && h.recursion_available);
    assert_eq!((h.id, h.arcount), (2, 0));
}

#[tokio::test(start_paused = true)]
async fn too_long_answers_are_truncated() {
    let c = default_cache();
    let answers: Vec<Rr> = (0..40)
        .map(|i| rr("big.example.com", 60, Data::A([192, 0, 2, i])))
        .collect();
    let wire = response("big.example.com", RType::A, Rcode::NOERROR, &answers, &[]);
    assert!(wire.len() > 512);
    c.insert_wire(&key("big.example.com", RType::A, false, false), &wire)
        .unwrap();

    let q = query("big.example.com", RType::A, 77);
    let out = fast(&c, &q, 512).unwrap();
    let h = Header::parse(&out).unwrap();
    assert!(h.truncated);
    assert_eq!(
        (h.id, h.qdcount, h.ancount, h.nscount, h.arcount),
        (77, 1, 0, 0, 0)
    );
    assert_eq!(&out[HEADER_LEN..], &q[HEADER_LEN..]);

    let qe = query_with("big.example.com", RType::A, 78, edns(false), false);
    let out = fast(&c, &qe, 512).unwrap();
    let h = Header::parse(&out).unwrap();
    assert!(h.truncated);
    assert_eq!(h.arcount, 1);
    assert_eq!(out.len(), HEADER_LEN + 17 + 4 + 11);
    // With room it is whole.
    let whole = fast(&c, &qe, 4096).unwrap();
    assert_eq!(whole.len(), wire.len() + 11);
    assert!(!Header::parse(&whole).unwrap().truncated);
}

/// An MX answer whose targets' addresses fill the additional section: 10 MX records, 20 glue
/// records, over 512 octets in all, under 512 without the glue.
fn mx_with_glue() -> Message {
    let owner: Name = "mx.example.com".parse().unwrap();
    let mut m = Message::response_to(&Message::query(owner.clone(), RType::MX));
    for i in 0..10u8 {
        let host: Name = format!("mail{i}.example.com").parse().unwrap();
        let exchange = host.clone();
        m.answers.push(Record::new(
            owner.clone(),
            300,
            RData::Mx {
                preference: u16::from(i),
                exchange,
            },
        ));
        m.additional.push(Record::new(
            host.clone(),
            300,
            RData::A([192, 0, 2, i].into()),
        ));
        m.additional.push(Record::new(
            host,
            300,
            RData::Aaaa(std::net::Ipv6Addr::new(
                0x2001,
                0xdb8,
                0,
                0,
                0,
                0,
                0,
                u16::from(i),
            )),
        ));
    }
    m
}

#[tokio::test(start_paused = true)]
async fn additional_records_go_before_tc_is_set() {
    // RFC 2181 section 9: TC is not for what additional-section processing added.
    let c = default_cache();
    let m = mx_with_glue();
    let wire = m.encode().unwrap();
    assert!(wire.len() > 512);
    c.insert_wire(&key("mx.example.com", RType::MX, false, false), &wire)
        .unwrap();
    advance(Duration::from_secs(5)).await;

    for (q, opt) in [
        (query("mx.example.com", RType::MX, 9), 0),
        (
            query_with("mx.example.com", RType::MX, 9, edns(false), false),
            1,
        ),
    ] {
        let out = fast(&c, &q, 512).unwrap();
        assert!(out.len() <= 512);
        let got = Message::parse(&out).unwrap();
        assert!(!got.header.truncated);
        assert_eq!(got.header.arcount, opt);
        assert!(got.additional.is_empty());
        assert_eq!(got.answers.len(), 10);
        for (r, stored) in got.answers.iter().zip(&m.answers) {
            assert_eq!((&r.name, &r.data, r.ttl), (&stored.name, &stored.data, 295));
        }
        // With room, the glue is there, its TTLs counted down too.
        let whole = Message::parse(&fast(&c, &q, 4096).unwrap()).unwrap();
        assert_eq!(whole.additional.len(), 20);
        assert!(whole.additional.iter().all(|r| r.ttl == 295));
    }
    // Too small even without the glue: TC=1 and nothing but the question.
    let out = fast(&c, &query("mx.example.com", RType::MX, 9), 100).unwrap();
    let h = Header::parse(&out).unwrap();
    assert!(h.truncated);
    assert_eq!((h.ancount, h.nscount, h.arcount), (0, 0, 0));
    // The codec follows the same rule for answers that do not come from the cache.
    let lean = Message::parse(&m.encode_limited(512).unwrap()).unwrap();
    assert!(!lean.header.truncated);
    assert_eq!((lean.answers.len(), lean.additional.len()), (10, 0));
    let short = Message::parse(&m.encode_limited(100).unwrap()).unwrap();
    assert!(short.header.truncated && short.answers.is_empty());
}

#[tokio::test(start_paused = true)]
async fn authority_records_go_before_tc_is_set_for_a_positive_answer() {
    // A TXT answer that fits 512 octets on its own, with the zone's NS set in the authority
    // section that does not fit: the NS set goes (as nsd does), not the answer.
    let owner: Name = "t.example.com".parse().unwrap();
    let mut m = Message::response_to(&Message::query(owner.clone(), RType::TXT));
    m.answers.push(Record::new(
        owner,
        300,
        RData::Txt(vec![vec![b'x'; 200].into(), vec![b'y'; 200].into()]),
    ));
    for i in 0..4 {
        m.authority.push(Record::new(
            "example.com".parse().unwrap(),
            300,
            RData::Ns(
                format!("ns{i}.nameserver-with-a-long-name.example.net")
                    .parse()
                    .unwrap(),
            ),
        ));
    }
    m.additional.push(Record::new(
        "ns0.nameserver-with-a-long-name.example.net"
            .parse()
            .unwrap(),
        300,
        RData::A([192, 0, 2, 53].into()),
    ));
    let wire = m.encode().unwrap();
    assert!(wire.len() > 512);
    let c = default_cache();
    c.insert_wire(&key("t.example.com", RType::TXT, false, false), &wire)
        .unwrap();
    advance(Duration::from_secs(2)).await;
    let out = fast(&c, &query("t.example.com", RType::TXT, 5), 512).unwrap();
    let got = Message::parse(&out).unwrap();
    assert!(!got.header.truncated);
    assert_eq!(
        (got.answers.len(), got.authority.len(), got.additional.len()),
        (1, 0, 0)
    );
    assert_eq!(
        (got.answers[0].ttl, &got.answers[0].data),
        (298, &m.answers[0].data)
    );
    // With room for the NS set but not the glue, the NS set stays.
    let room = wire.len() - 16;
    let got =
        Message::parse(&fast(&c, &query("t.example.com", RType::TXT, 5), room).unwrap()).unwrap();
    assert_eq!(
        (got.answers.len(), got.authority.len(), got.additional.len()),
        (1, 4, 0)
    );
    assert!(got.authority.iter().all(|r| r.ttl == 298));
    // The codec does the same.
    let lean = Message::parse(&m.encode_limited(512).unwrap()).unwrap();
    assert!(!lean.header.truncated);
    assert_eq!((lean.answers.len(), lean.authority.len()), (1, 0));

    // An authority section with anything but NS records in it (here an SOA, as after a CNAME to
    // a name that does not exist; NSEC proofs and RRSIGs alike) is needed: TC instead.
    let mut mixed = m.clone();
    mixed.questions[0].name = "u.example.com".parse().unwrap();
    mixed.answers[0].name = "u.example.com".parse().unwrap();
    mixed.authority[3] = Record::new(
        "example.com".parse().unwrap(),
        300,
        RData::Soa(Soa {
            mname: "ns0.example.com".parse().unwrap(),
            rname: "hostmaster.example.com".parse().unwrap(),
            serial: 1,
            refresh: 2,
            retry: 3,
            expire: 4,
            minimum: 60,
        }),
    );
    let mixed_wire = mixed.encode().unwrap();
    assert!(mixed_wire.len() > 512);
    assert!(
        Header::parse(&mixed.encode_limited(512).unwrap())
            .unwrap()
            .truncated
    );
    c.insert_wire(&key("u.example.com", RType::TXT, false, false), &mixed_wire)
        .unwrap();
    let out = fast(&c, &query("u.example.com", RType::TXT, 7), 512).unwrap();
    let h = Header::parse(&out).unwrap();
    assert!(h.truncated);
    assert_eq!((h.ancount, h.nscount, h.arcount), (0, 0, 0));

    // A negative answer keeps its SOA (RFC 2308): no room for it means TC.
    let neg = response(
        "gone.example.com",
        RType::A,
        Rcode::NXDOMAIN,
        &[],
        &[rr("example.com", 300, Data::Soa { minimum: 60 })],
    );
    c.insert_wire(&key("gone.example.com", RType::A, false, false), &neg)
        .unwrap();
    let q = query("gone.example.com", RType::A, 6);
    let whole = fast(&c, &q, 512).unwrap();
    assert_eq!(Header::parse(&whole).unwrap().nscount, 1);
    let short = fast(&c, &q, whole.len() - 1).unwrap();
    let h = Header::parse(&short).unwrap();
    assert!(h.truncated);
    assert_eq!((h.ancount, h.nscount), (0, 0));
}

#[tokio::test(start_paused = true)]
async fn fast_path_declines_what_it_does_not_handle() {
    let c = default_cache();
    c.insert_wire(
        &key("www.example.com", RType::A, false, false),
        &a_response("www.example.com", 60),
    )
    .unwrap();
    let with = |opt: EdnsOption| {
        let mut e = edns(false).unwrap();
        e.options.push(opt);
        query_with("www.example.com", RType::A, 1, Some(e), false)
    };
    // A cookie does not change the answer.
    let cookie = with(EdnsOption::Cookie {
        client: [1; 8],
        server: Box::new([]),
    });
    assert!(fast(&c, &cookie, 512).is_some());
    // Nor does Client Subnet: the upstream never sees it.
    let ecs = with(EdnsOption::ClientSubnet(crate::wire::ClientSubnet {
        family: 1,
        source_prefix: 24,
        scope_prefix: 0,
        address: Box::new([192, 0, 2]),
    }));
    assert!(fast(&c, &ecs, 512).is_some());
    // Options that do not parse are the slow path's (FORMERR), as on a miss: a Client Subnet
    // address longer than its prefix says,
    let long_address = with(EdnsOption::ClientSubnet(crate::wire::ClientSubnet {
        family: 1,
        source_prefix: 8,
        scope_prefix: 0,
        address: Box::new([192, 0, 2]),
    }));
    assert!(Message::parse(&long_address).is_err());
    assert!(fast(&c, &long_address, 512).is_none());
    // and an option whose length runs past the packet.
    let mut bad = cookie.clone();
    let len = bad.len();
    // The cookie option (code, length 8, 8 octets) ends the packet; its length now runs past it.
    assert_eq!(&bad[len - 10..len - 8], &[0, 8]);
    bad[len - 10] = 0xFF;
    assert!(fast(&c, &bad, 512).is_none());
    // EDNS version 1 needs BADVERS from the slow path.
    let v1 = query_with(
        "www.example.com",
        RType::A,
        1,
        Some(Edns {
            version: 1,
            ..Edns::default()
        }),
        false,
    );
    assert!(fast(&c, &v1, 512).is_none());
    // Other opcodes.
    let mut notify = query("www.example.com", RType::A, 1);
    notify[2] |= 4 << 3;
    assert!(fast(&c, &notify, 512).is_none());
    // AD only for clients that asked for it.
    let mut ad = query("www.example.com", RType::A, 1);
    ad[3] |= 0x20;
    assert!(fast(&c, &ad, 512).is_some());
}

#[tokio::test(start_paused = true)]
async fn ad_bit_is_shown_only_to_clients_that_ask() {
    let c = default_cache();
    let wire = response_with(
        Header {
            authentic_data: true,
            recursion_available: true,
            ..Header::default()
        },
        "www.example.com",
        RType::A,
        &[rr("www.example.com", 60, Data::A([192, 0, 2, 1]))],
        &[],
        None,
    );
    c.insert_wire(&key("www.example.com", RType::A, false, false), &wire)
        .unwrap();
    let plain = query("www.example.com", RType::A, 1);
    assert!(
        !Header::parse(&fast(&c, &plain, 512).unwrap())
            .unwrap()
            .authentic_data
    );
    let mut ad = plain.clone();
    ad[3] |= 0x20;
    assert!(
        Header::parse(&fast(&c, &ad, 512).unwrap())
            .unwrap()
            .authentic_data
    );
}
