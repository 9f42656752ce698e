//! Typed records in and out: answers built as `Message`s go through `Message::encode` into the
//! cache and `Message::parse` out of it (the `codec_` tests).

use super::*;

#[tokio::test(start_paused = true)]
async fn codec_handle_caches_and_counts_down() {
    let c = Arc::new(default_cache());
    let up = Upstream::new(|req| Ok(a_answer(req, 300)));
    let ch = chain(&c, &up);
    let first = ch
        .handle(&request(msg_query("Www.Example.com", RType::A)))
        .await
        .unwrap()
        .message()
        .unwrap();
    assert_eq!(first.answers[0].ttl, 300);
    assert!(!first.header.authoritative);
    advance(Duration::from_secs(42)).await;
    let second = ch
        .handle(&request(msg_query("wWW.example.COM", RType::A)))
        .await
        .unwrap()
        .message()
        .unwrap();
    assert_eq!(up.calls(), 1);
    assert_eq!(second.answers[0].ttl, 258);
    assert_eq!(
        second.answers[0].data,
        RData::A("192.0.2.7".parse().unwrap())
    );
    assert_eq!(
        second.questions[0].name.as_wire(),
        name("wWW.example.COM").as_wire()
    );
    // The fast path serves the same entry.
    let out = fast(&c, &query("www.example.com", RType::A, 3), 512).unwrap();
    assert_eq!(Message::parse(&out).unwrap().answers, second.answers);
}

#[tokio::test(start_paused = true)]
async fn codec_negative_answer_from_message() {
    let c = Arc::new(default_cache());
    let up = Upstream::new(|req| {
        let mut m = Message::response_to(&req.query);
        m.set_rcode(Rcode::NXDOMAIN);
        m.authority.push(Record::new(
            name("example.com"),
            3600,
            RData::Soa(Soa {
                mname: name("ns.example.com"),
                rname: name("hostmaster.example.com"),
                serial: 1,
                refresh: 7200,
                retry: 3600,
                expire: 1209600,
                minimum: 60,
            }),
        ));
        Ok(m)
    });
    let ch = chain(&c, &up);
    let req = request(msg_query("gone.example.com", RType::A));
    let first = ch.handle(&req).await.unwrap().message().unwrap();
    assert_eq!(first.authority[0].ttl, 60);
    advance(Duration::from_secs(59)).await;
    let cached = ch.handle(&req).await.unwrap().message().unwrap();
    assert_eq!(cached.rcode(), Rcode::NXDOMAIN);
    assert_eq!(cached.authority[0].ttl, 1);
    assert_eq!(up.calls(), 1);
    advance(Duration::from_secs(1)).await;
    assert_eq!(
        ch.handle(&req).await.unwrap().message().unwrap().authority[0].ttl,
        0
    );
    assert_eq!(up.calls(), 1);
    advance(Duration::from_secs(1)).await;
    ch.handle(&req).await.unwrap().message().unwrap();
    assert_eq!(up.calls(), 2);
}
