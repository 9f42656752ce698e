//! Tests of the denial proofs: the worked examples of RFC 4035 appendix B (NSEC) and RFC 5155
//! appendix B (NSEC3) transcribed as zone text (signatures left out: the functions take verified
//! records), each also run with every needed record removed or its range moved, plus synthetic
//! chains for the limits.

use super::*;
use crate::wire::zone::base32hex_encode;
use crate::wire::{parse_record_line, Nsec3, RData};

fn n(s: &str) -> Name {
    s.parse().unwrap()
}

/// Records from zone text, one per line.
fn recs(text: &str) -> Vec<Record> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(|l| parse_record_line(l, 3600).unwrap())
        .collect()
}

fn without(records: &[Record], i: usize) -> Vec<Record> {
    let mut v = records.to_vec();
    v.remove(i);
    v
}

fn budget() -> HashBudget {
    HashBudget::new()
}

fn secure(d: Denial) -> Result<Proven, DenialError> {
    Ok(Proven::Secure(d))
}

fn insecure_opt_out() -> Result<Proven, DenialError> {
    Ok(Proven::Insecure(Insecure::OptOut))
}

fn missing(m: Missing) -> Result<Proven, DenialError> {
    Err(DenialError::Missing(m))
}

fn contradicted(c: Contradiction) -> Result<Proven, DenialError> {
    Err(DenialError::Contradicted(c))
}

/// The same NSEC3 records with `f` applied to each one's data.
fn map_nsec3(records: &[Record], f: impl Fn(&mut Nsec3)) -> Vec<Record> {
    records
        .iter()
        .cloned()
        .map(|mut r| {
            if let RData::Nsec3(d) = &mut r.data {
                f(d);
            }
            r
        })
        .collect()
}

fn clear_opt_out(records: &[Record]) -> Vec<Record> {
    map_nsec3(records, |d| d.flags = 0)
}

/// An NSEC3 chain for `zone` over `names` (each with its types), hashed with `iterations` and
/// `salt`, every record with `flags`.
fn nsec3_chain(
    zone: &str,
    iterations: u16,
    salt: &[u8],
    flags: u8,
    names: &[(&str, &[RType])],
) -> Vec<Record> {
    let mut hashed: Vec<(Nsec3Hash, &[RType])> = names
        .iter()
        .map(|(name, types)| (nsec3_hash(&n(name), salt, iterations), *types))
        .collect();
    hashed.sort();
    (0..hashed.len())
        .map(|i| {
            let (owner, types) = hashed[i];
            let next = hashed[(i + 1) % hashed.len()].0;
            let label = base32hex_encode(&owner).to_lowercase();
            Record::new(
                n(&format!("{label}.{zone}")),
                3600,
                RData::Nsec3(Nsec3 {
                    hash_algorithm: NSEC3_SHA1,
                    flags,
                    iterations,
                    salt: salt.into(),
                    next_hashed_owner: next.into(),
                    types: TypeBitmap::new(types.iter().copied()),
                }),
            )
        })
        .collect()
}

/// The NSEC3 of `chain` whose owner is the hash of `name`.
fn record_for(chain: &[Record], name: &str) -> Record {
    let d = match &chain[0].data {
        RData::Nsec3(d) => d.clone(),
        _ => unreachable!(),
    };
    let label = base32hex_encode(&nsec3_hash(&n(name), &d.salt, d.iterations)).to_lowercase();
    chain
        .iter()
        .find(|r| r.name.labels().next() == Some(label.as_bytes()))
        .unwrap()
        .clone()
}

// ---------------------------------------------------------------------------------------------
// NSEC3 hash: RFC 5155 appendix A

#[test]
fn nsec3_hash_matches_rfc5155_appendix_a() {
    // The example zone's owner names and their hashes, salt aabbccdd, 12 iterations.
    let salt = [0xaa, 0xbb, 0xcc, 0xdd];
    let vectors = [
        ("example", "0p9mhaveqvm6t7vbl5lop2u3t2rp3tom"),
        ("a.example", "35mthgpgcu1qg68fab165klnsnk3dpvl"),
        ("ai.example", "gjeqe526plbf1g8mklp59enfd789njgi"),
        ("ns1.example", "2t7b4g4vsa5smi47k61mv5bv1a22bojr"),
        ("ns2.example", "q04jkcevqvmu85r014c7dkba38o0ji5r"),
        ("w.example", "k8udemvp1j2f7eg6jebps17vp3n8i58h"),
        ("*.w.example", "r53bq7cc2uvmubfu5ocmm6pers9tk9en"),
        ("x.w.example", "b4um86eghhds6nea196smvmlo4ors995"),
        ("y.w.example", "ji6neoaepv8b5o6k4ev33abha8ht9fgc"),
        ("x.y.w.example", "2vptu5timamqttgl4luu9kg21e0aor3s"),
        ("xx.example", "t644ebqk9bibcna874givr6joj62mlhv"),
    ];
    for (name, want) in vectors {
        let h = nsec3_hash(&n(name), &salt, 12);
        assert_eq!(base32hex_encode(&h).to_lowercase(), want, "H({name})");
        // Case does not matter: the canonical form is lower case.
        let upper = nsec3_hash(&n(&name.to_uppercase()), &salt, 12);
        assert_eq!(upper, h, "H({name}) upper case");
    }
    // Other iterations or salt give other hashes.
    assert_ne!(
        nsec3_hash(&n("example"), &salt, 11),
        nsec3_hash(&n("example"), &salt, 12)
    );
    assert_ne!(
        nsec3_hash(&n("example"), &[], 12),
        nsec3_hash(&n("example"), &salt, 12)
    );
}

#[test]
fn nsec3_hash_iterates_over_digest_and_salt() {
    // RFC 5155 section 5: IH(0) = H(name || salt), IH(k) = H(IH(k-1) || salt).
    let sha1 = |parts: &[&[u8]]| {
        let mut ctx = ring::digest::Context::new(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY);
        for p in parts {
            ctx.update(p);
        }
        ctx.finish().as_ref().to_vec()
    };
    let salt = [1u8, 2, 3];
    let ih0 = sha1(&[n("example").as_wire(), &salt]);
    assert_eq!(nsec3_hash(&n("EXAMPLE"), &salt, 0).to_vec(), ih0);
    let ih1 = sha1(&[&ih0, &salt]);
    assert_eq!(nsec3_hash(&n("example"), &salt, 1).to_vec(), ih1);
}

// ---------------------------------------------------------------------------------------------
// RFC 5155 appendix B: every NSEC3 record of the example zone has the Opt-Out flag set.

/// B.1: a.c.x.w.example does not exist.
const B1_NAME_ERROR: &str = "
    0p9mhaveqvm6t7vbl5lop2u3t2rp3tom.example. 3600 IN NSEC3 1 1 12 aabbccdd 2t7b4g4vsa5smi47k61mv5bv1a22bojr NS SOA MX RRSIG DNSKEY NSEC3PARAM
    b4um86eghhds6nea196smvmlo4ors995.example. 3600 IN NSEC3 1 1 12 aabbccdd gjeqe526plbf1g8mklp59enfd789njgi MX RRSIG
    35mthgpgcu1qg68fab165klnsnk3dpvl.example. 3600 IN NSEC3 1 1 12 aabbccdd b4um86eghhds6nea196smvmlo4ors995 NS DS RRSIG
";

/// B.2: ns1.example has no MX.
const B2_NO_DATA: &str = "
    2t7b4g4vsa5smi47k61mv5bv1a22bojr.example. 3600 IN NSEC3 1 1 12 aabbccdd 2vptu5timamqttgl4luu9kg21e0aor3s A RRSIG
";

/// B.2.1: y.w.example is an empty non-terminal.
const B21_NO_DATA_ENT: &str = "
    ji6neoaepv8b5o6k4ev33abha8ht9fgc.example. 3600 IN NSEC3 1 1 12 aabbccdd k8udemvp1j2f7eg6jebps17vp3n8i58h
";

/// B.3: the referral of mc.c.example to c.example, an unsigned zone in an opt-out span.
const B3_OPT_OUT_REFERRAL: &str = "
    35mthgpgcu1qg68fab165klnsnk3dpvl.example. 3600 IN NSEC3 1 1 12 aabbccdd b4um86eghhds6nea196smvmlo4ors995 NS DS RRSIG
    0p9mhaveqvm6t7vbl5lop2u3t2rp3tom.example. 3600 IN NSEC3 1 1 12 aabbccdd 2t7b4g4vsa5smi47k61mv5bv1a22bojr NS SOA MX RRSIG DNSKEY NSEC3PARAM
";

/// B.4: a.z.w.example MX answered from *.w.example (RRSIG labels 2).
const B4_WILDCARD: &str = "
    q04jkcevqvmu85r014c7dkba38o0ji5r.example. 3600 IN NSEC3 1 1 12 aabbccdd r53bq7cc2uvmubfu5ocmm6pers9tk9en A RRSIG
";

/// B.5: a.z.w.example AAAA: *.w.example exists without AAAA.
const B5_WILDCARD_NO_DATA: &str = "
    k8udemvp1j2f7eg6jebps17vp3n8i58h.example. 3600 IN NSEC3 1 1 12 aabbccdd kohar7mbb8dc2ce8a9qvl8hon4k53uhi
    q04jkcevqvmu85r014c7dkba38o0ji5r.example. 3600 IN NSEC3 1 1 12 aabbccdd r53bq7cc2uvmubfu5ocmm6pers9tk9en A RRSIG
    r53bq7cc2uvmubfu5ocmm6pers9tk9en.example. 3600 IN NSEC3 1 1 12 aabbccdd t644ebqk9bibcna874givr6joj62mlhv MX RRSIG
";

/// B.6: the DS query for example. answered by the example zone itself.
const B6_DS_CHILD: &str = "
    0p9mhaveqvm6t7vbl5lop2u3t2rp3tom.example. 3600 IN NSEC3 1 1 12 aabbccdd 2t7b4g4vsa5smi47k61mv5bv1a22bojr NS SOA MX RRSIG DNSKEY NSEC3PARAM
";

#[test]
fn rfc5155_b1_name_error() {
    let zone = n("example");
    let qname = n("a.c.x.w.example");
    let rrs = recs(B1_NAME_ERROR);
    // The next closer name c.x.w.example is covered by an opt-out record: insecure.
    assert_eq!(
        prove_nxdomain(&zone, &rrs, &qname, &mut budget()),
        insecure_opt_out()
    );
    let clear = clear_opt_out(&rrs);
    assert_eq!(
        prove_nxdomain(&zone, &clear, &qname, &mut budget()),
        secure(Denial::NxDomain)
    );
    // Each record is needed, for the part RFC 5155 appendix B.1 names.
    let roles = [
        Missing::NextCloserCover, // 0p9mh... covers c.x.w.example
        Missing::NextCloserCover, // b4um8... matches x.w.example; without it example. is the
        // closest encloser and nothing covers w.example
        Missing::WildcardCover, // 35mth... covers *.x.w.example
    ];
    for (i, role) in roles.into_iter().enumerate() {
        assert_eq!(
            prove_nxdomain(&zone, &without(&clear, i), &qname, &mut budget()),
            missing(role),
            "without record {i}"
        );
    }
    // A range moved: 0p9mh... ending before c.x.w.example (0va5bpr2...) covers it no longer.
    let moved = recs(&B1_NAME_ERROR.replace(
        "2t7b4g4vsa5smi47k61mv5bv1a22bojr NS SOA",
        "0va5bpr2ou0vk0lbqeeljri88laipsfg NS SOA",
    ));
    assert_eq!(
        prove_nxdomain(&zone, &clear_opt_out(&moved), &qname, &mut budget()),
        missing(Missing::NextCloserCover)
    );
    // The records do not deny x.w.example, which they show to exist.
    assert_eq!(
        prove_nxdomain(&zone, &clear, &n("x.w.example"), &mut budget()),
        contradicted(Contradiction::NameExists)
    );
}

#[test]
fn rfc5155_b2_no_data() {
    let zone = n("example");
    let qname = n("ns1.example");
    let rrs = recs(B2_NO_DATA);
    assert_eq!(
        prove_nodata(&zone, &rrs, &qname, RType::MX, &mut budget()),
        secure(Denial::NoData)
    );
    // Not for a type the bitmap has, and not with a CNAME there (RFC 6840 section 4.3).
    assert_eq!(
        prove_nodata(&zone, &rrs, &qname, RType::A, &mut budget()),
        contradicted(Contradiction::TypeExists)
    );
    let cname = recs(&B2_NO_DATA.replace(" A RRSIG", " CNAME RRSIG"));
    assert_eq!(
        prove_nodata(&zone, &cname, &qname, RType::MX, &mut budget()),
        contradicted(Contradiction::CnameExists)
    );
    // Without the record nothing matches ns1.example or any ancestor; the search hashed
    // ns1.example and example., and nothing above the apex.
    let mut b = budget();
    assert_eq!(
        prove_nodata(&zone, &[], &qname, RType::MX, &mut b),
        missing(Missing::ClosestEncloser)
    );
    assert_eq!(b.remaining(), MAX_NSEC3_HASHES_PER_QUERY - 2);
    // The record does not match another name.
    assert_eq!(
        prove_nodata(&zone, &rrs, &n("ns2.example"), RType::MX, &mut budget()),
        missing(Missing::ClosestEncloser)
    );
}

#[test]
fn rfc5155_b21_no_data_empty_non_terminal() {
    let zone = n("example");
    let rrs = recs(B21_NO_DATA_ENT);
    assert_eq!(
        prove_nodata(&zone, &rrs, &n("y.w.example"), RType::A, &mut budget()),
        secure(Denial::NoData)
    );
    assert_eq!(
        prove_nodata(&zone, &[], &n("y.w.example"), RType::A, &mut budget()),
        missing(Missing::ClosestEncloser)
    );
    assert_eq!(
        prove_nxdomain(&zone, &rrs, &n("y.w.example"), &mut budget()),
        contradicted(Contradiction::NameExists)
    );
}

#[test]
fn rfc5155_b3_referral_to_opt_out_unsigned_zone() {
    let zone = n("example");
    let delegation = n("c.example");
    let rrs = recs(B3_OPT_OUT_REFERRAL);
    // Closest encloser example. (0p9mh...), next closer c.example covered by the opt-out
    // 35mth...: the delegation is insecure, and so is the answer.
    assert_eq!(
        prove_insecure_delegation(&zone, &rrs, &delegation, &mut budget()),
        insecure_opt_out()
    );
    // The DS question for c.example gets the same records (RFC 5155 section 8.6).
    assert_eq!(
        prove_nodata(&zone, &rrs, &delegation, RType::DS, &mut budget()),
        insecure_opt_out()
    );
    let roles = [Missing::NextCloserCover, Missing::ClosestEncloser];
    for (i, role) in roles.into_iter().enumerate() {
        assert_eq!(
            prove_insecure_delegation(&zone, &without(&rrs, i), &delegation, &mut budget()),
            missing(role),
            "without record {i}"
        );
    }
    // Without opt-out the span proves that no delegation is there: no proof of one.
    assert_eq!(
        prove_insecure_delegation(&zone, &clear_opt_out(&rrs), &delegation, &mut budget()),
        missing(Missing::Match)
    );
    // a.example, the signed delegation in those records, has DS: not insecure.
    assert_eq!(
        prove_insecure_delegation(&zone, &rrs, &n("a.example"), &mut budget()),
        contradicted(Contradiction::DsExists)
    );
}

#[test]
fn rfc5155_b4_wildcard_expansion() {
    let zone = n("example");
    let qname = n("a.z.w.example");
    let rrs = recs(B4_WILDCARD);
    // The next closer z.w.example is covered by an opt-out record: insecure.
    assert_eq!(
        prove_wildcard_answer(&zone, &rrs, &qname, 2, &mut budget()),
        insecure_opt_out()
    );
    let clear = clear_opt_out(&rrs);
    assert_eq!(
        prove_wildcard_answer(&zone, &clear, &qname, 2, &mut budget()),
        secure(Denial::WildcardAnswer)
    );
    assert_eq!(
        prove_wildcard_answer(&zone, &[], &qname, 2, &mut budget()),
        missing(Missing::NextCloserCover)
    );
    // Its range moved to end before z.w.example's hash (qlu7gtfa...).
    let moved = clear_opt_out(&recs(&B4_WILDCARD.replace(
        "r53bq7cc2uvmubfu5ocmm6pers9tk9en",
        "q04jkcevqvmu85r014c7dkba38o0ji5s",
    )));
    assert_eq!(
        prove_wildcard_answer(&zone, &moved, &qname, 2, &mut budget()),
        missing(Missing::NextCloserCover)
    );
    // A labels field that makes no sense for the name in this zone.
    for labels in [0, 4, 9] {
        assert!(matches!(
            prove_wildcard_answer(&zone, &clear, &qname, labels, &mut budget()),
            Err(DenialError::BadWildcardLabels { .. })
        ));
    }
    // A question for the wildcard's own name is no expansion: no records needed.
    assert_eq!(
        prove_wildcard_answer(&zone, &[], &n("*.w.example"), 2, &mut budget()),
        secure(Denial::WildcardAnswer)
    );
}

#[test]
fn rfc5155_b5_wildcard_no_data() {
    let zone = n("example");
    let qname = n("a.z.w.example");
    let rrs = recs(B5_WILDCARD_NO_DATA);
    assert_eq!(
        prove_nodata(&zone, &rrs, &qname, RType::AAAA, &mut budget()),
        insecure_opt_out()
    );
    let clear = clear_opt_out(&rrs);
    assert_eq!(
        prove_nodata(&zone, &clear, &qname, RType::AAAA, &mut budget()),
        secure(Denial::WildcardNoData)
    );
    let roles = [
        Missing::ClosestEncloser, // k8ude... matches w.example
        Missing::NextCloserCover, // q04jk... covers z.w.example
        Missing::WildcardMatch,   // r53bq... matches *.w.example
    ];
    for (i, role) in roles.into_iter().enumerate() {
        assert_eq!(
            prove_nodata(
                &zone,
                &without(&clear, i),
                &qname,
                RType::AAAA,
                &mut budget()
            ),
            missing(role),
            "without record {i}"
        );
    }
    // The wildcard has MX.
    assert_eq!(
        prove_nodata(&zone, &clear, &qname, RType::MX, &mut budget()),
        contradicted(Contradiction::TypeExists)
    );
    // And it exists, so the name error these records might seem to show is a contradiction.
    assert_eq!(
        prove_nxdomain(&zone, &clear, &qname, &mut budget()),
        contradicted(Contradiction::WildcardExists)
    );
}

#[test]
fn rfc5155_b6_ds_from_the_child_zone_proves_nothing() {
    // The example zone's own apex record answers "example. DS" with NODATA, but only the parent
    // can deny a DS (RFC 6840 section 4.4).
    let zone = n("example");
    let rrs = recs(B6_DS_CHILD);
    assert_eq!(
        prove_nodata(&zone, &rrs, &n("example"), RType::DS, &mut budget()),
        contradicted(Contradiction::ChildSide)
    );
    // The same record is a fine NODATA for a type the apex lacks.
    assert_eq!(
        prove_nodata(&zone, &rrs, &n("example"), RType::A, &mut budget()),
        secure(Denial::NoData)
    );
}

#[test]
fn rfc5155_zone_ds_no_data_inside_the_zone() {
    // ai.example has no DS and is no delegation (a DS query for a name inside the zone).
    let rrs = recs("gjeqe526plbf1g8mklp59enfd789njgi.example. 3600 IN NSEC3 1 1 12 aabbccdd ji6neoaepv8b5o6k4ev33abha8ht9fgc A HINFO AAAA RRSIG");
    assert_eq!(
        prove_nodata(
            &n("example"),
            &rrs,
            &n("ai.example"),
            RType::DS,
            &mut budget()
        ),
        secure(Denial::NoData)
    );
}

// ---------------------------------------------------------------------------------------------
// NSEC3 rules beyond the RFC examples, on synthetic chains.

/// A small zone: an insecure delegation, a signed one, a DNAME, a wildcard, a CNAME.
fn synthetic(iterations: u16, flags: u8) -> Vec<Record> {
    use RType as T;
    nsec3_chain(
        "example",
        iterations,
        &[],
        flags,
        &[
            (
                "example",
                &[T::NS, T::SOA, T::RRSIG, T::DNSKEY, T::NSEC3PARAM],
            ),
            ("www.example", &[T::A, T::RRSIG]),
            ("alias.example", &[T::CNAME, T::RRSIG]),
            ("unsigned.example", &[T::NS]),
            ("signed.example", &[T::NS, T::DS, T::RRSIG]),
            ("dname.example", &[T::DNAME, T::RRSIG]),
            ("wild.example", &[]),
            ("*.wild.example", &[T::TXT, T::RRSIG]),
        ],
    )
}

#[test]
fn nsec3_delegations_follow_rfc6840() {
    let zone = n("example");
    let chain = synthetic(0, 0);
    let mut b = budget();
    assert_eq!(
        prove_insecure_delegation(&zone, &chain, &n("unsigned.example"), &mut b),
        secure(Denial::InsecureDelegation)
    );
    assert_eq!(
        prove_nodata(&zone, &chain, &n("unsigned.example"), RType::DS, &mut b),
        secure(Denial::InsecureDelegation)
    );
    assert_eq!(
        prove_insecure_delegation(&zone, &chain, &n("signed.example"), &mut b),
        contradicted(Contradiction::DsExists)
    );
    assert_eq!(
        prove_insecure_delegation(&zone, &chain, &n("www.example"), &mut b),
        contradicted(Contradiction::NotDelegation)
    );
    assert_eq!(
        prove_insecure_delegation(&zone, &chain, &n("example"), &mut b),
        contradicted(Contradiction::ChildSide)
    );
    // The parent says nothing of the child's data (RFC 6840 section 4.1): no NODATA for A at
    // the cut, no NXDOMAIN below it, and likewise below a DNAME.
    assert_eq!(
        prove_nodata(&zone, &chain, &n("unsigned.example"), RType::A, &mut b),
        contradicted(Contradiction::Delegation)
    );
    assert_eq!(
        prove_nxdomain(&zone, &chain, &n("host.unsigned.example"), &mut b),
        contradicted(Contradiction::Delegation)
    );
    assert_eq!(
        prove_nxdomain(&zone, &chain, &n("host.dname.example"), &mut b),
        contradicted(Contradiction::Delegation)
    );
    // A CNAME at the name is no NODATA.
    assert_eq!(
        prove_nodata(&zone, &chain, &n("alias.example"), RType::A, &mut b),
        contradicted(Contradiction::CnameExists)
    );
    // The chain proves NXDOMAIN elsewhere, and a wildcard no-data and answer under wild.
    assert_eq!(
        prove_nxdomain(&zone, &chain, &n("nope.example"), &mut b),
        secure(Denial::NxDomain)
    );
    assert_eq!(
        prove_nodata(&zone, &chain, &n("a.b.wild.example"), RType::A, &mut b),
        secure(Denial::WildcardNoData)
    );
    assert_eq!(
        prove_wildcard_answer(&zone, &chain, &n("a.b.wild.example"), 2, &mut b),
        secure(Denial::WildcardAnswer)
    );
    // A name the wildcard would answer is no NXDOMAIN.
    assert_eq!(
        prove_nxdomain(&zone, &chain, &n("a.wild.example"), &mut b),
        contradicted(Contradiction::WildcardExists)
    );
    // The questions must be in the zone.
    assert!(matches!(
        prove_nxdomain(&zone, &chain, &n("example.org"), &mut b),
        Err(DenialError::OutsideZone { .. })
    ));
}

#[test]
fn nsec3_iterations_above_the_cutoff_are_insecure_with_ede_27() {
    let zone = n("example");
    let qname = n("nope.example");
    let at_limit = synthetic(MAX_NSEC3_ITERATIONS, 0);
    let mut b = budget();
    assert_eq!(
        prove_nxdomain(&zone, &at_limit, &qname, &mut b),
        secure(Denial::NxDomain)
    );
    // nope.example, example (match), *.example.
    assert_eq!(b.remaining(), MAX_NSEC3_HASHES_PER_QUERY - 3);

    let above = synthetic(MAX_NSEC3_ITERATIONS + 1, 0);
    let mut b = budget();
    let want = Ok(Proven::Insecure(Insecure::Nsec3Iterations {
        iterations: MAX_NSEC3_ITERATIONS + 1,
    }));
    assert_eq!(prove_nxdomain(&zone, &above, &qname, &mut b), want);
    assert_eq!(
        prove_nodata(&zone, &above, &n("www.example"), RType::MX, &mut b),
        want
    );
    assert_eq!(
        prove_insecure_delegation(&zone, &above, &n("unsigned.example"), &mut b),
        want
    );
    assert_eq!(
        prove_wildcard_answer(&zone, &above, &n("a.wild.example"), 2, &mut b),
        want
    );
    // Nothing was hashed.
    assert_eq!(b.remaining(), MAX_NSEC3_HASHES_PER_QUERY);
    assert_eq!(
        Insecure::Nsec3Iterations { iterations: 51 }.ede(),
        Some(ede::UNSUPPORTED_NSEC3_ITERATIONS_VALUE)
    );
    assert_eq!(ede::UNSUPPORTED_NSEC3_ITERATIONS_VALUE, 27);
    assert_eq!(Insecure::OptOut.ede(), None);
    // One record above the cutoff among good ones is enough (the records are one chain).
    let mut mixed = synthetic(0, 0);
    mixed.push(above[0].clone());
    assert_eq!(prove_nxdomain(&zone, &mixed, &qname, &mut budget()), want);
}

#[test]
fn nsec3_hash_budget_ends_the_proof_as_bogus() {
    let zone = n("example");
    let clear = clear_opt_out(&recs(B1_NAME_ERROR));
    let qname = n("a.c.x.w.example");
    // a.c.x.w.example, c.x.w.example, x.w.example (match), *.x.w.example: four hashes.
    let mut b = HashBudget::with_limit(4);
    assert_eq!(
        prove_nxdomain(&zone, &clear, &qname, &mut b),
        secure(Denial::NxDomain)
    );
    assert_eq!(b.remaining(), 0);
    let mut b = HashBudget::with_limit(3);
    let err = prove_nxdomain(&zone, &clear, &qname, &mut b).unwrap_err();
    assert_eq!(err, DenialError::HashBudgetExhausted);
    assert_eq!(err.reason(), BogusReason::Other);
    // A spent budget stays spent for the rest of the query.
    assert_eq!(
        prove_nodata(
            &zone,
            &recs(B2_NO_DATA),
            &n("ns1.example"),
            RType::MX,
            &mut b
        ),
        Err(DenialError::HashBudgetExhausted)
    );

    // The longest names fit one budget; a second proof of one in the same query does not.
    let chain = synthetic(0, 0);
    let long = n(&format!("{}example", "a.".repeat(120)));
    assert!(long.label_count() == 121);
    let mut b = budget();
    assert_eq!(
        prove_nxdomain(&zone, &chain, &long, &mut b),
        secure(Denial::NxDomain)
    );
    // 120 names below the apex, the apex, the wildcard.
    assert_eq!(b.remaining(), MAX_NSEC3_HASHES_PER_QUERY - 122);
    assert_eq!(
        prove_nxdomain(&zone, &chain, &long, &mut b),
        Err(DenialError::HashBudgetExhausted)
    );
    assert_eq!(
        HashBudget::default().remaining(),
        MAX_NSEC3_HASHES_PER_QUERY
    );
}

#[test]
fn nsec3_records_beyond_the_cap_are_not_considered() {
    let zone = n("example");
    let qname = n("ns1.example");
    let proof = clear_opt_out(&recs(B2_NO_DATA));
    // Same parameters, ranges that cover nothing: owner 2i, next 2i + 1.
    let junk = |count: usize| -> Vec<Record> {
        (0..count)
            .map(|i| {
                let mut owner = [0u8; NSEC3_HASH_LEN];
                owner[NSEC3_HASH_LEN - 1] = (2 * i) as u8;
                let mut next = owner;
                next[NSEC3_HASH_LEN - 1] += 1;
                let label = base32hex_encode(&owner).to_lowercase();
                Record::new(
                    n(&format!("{label}.example")),
                    3600,
                    RData::Nsec3(Nsec3 {
                        hash_algorithm: NSEC3_SHA1,
                        flags: 0,
                        iterations: 12,
                        salt: vec![0xaa, 0xbb, 0xcc, 0xdd].into(),
                        next_hashed_owner: next.into(),
                        types: TypeBitmap::new([RType::A]),
                    }),
                )
            })
            .collect()
    };
    let mut fits = junk(MAX_NSEC3_RECORDS - 1);
    fits.extend(proof.iter().cloned());
    assert_eq!(
        prove_nodata(&zone, &fits, &qname, RType::MX, &mut budget()),
        secure(Denial::NoData)
    );
    let mut over = junk(MAX_NSEC3_RECORDS);
    over.extend(proof.iter().cloned());
    assert_eq!(
        prove_nodata(&zone, &over, &qname, RType::MX, &mut budget()),
        missing(Missing::ClosestEncloser)
    );
    // Records of other types or zones do not count against the cap.
    let mut others = recs("www.example.org. 3600 IN A 192.0.2.1\n".repeat(40).as_str());
    others.extend(proof.iter().cloned());
    assert_eq!(
        prove_nodata(&zone, &others, &qname, RType::MX, &mut budget()),
        secure(Denial::NoData)
    );
}

#[test]
fn unusable_nsec3_records_are_ignored() {
    let zone = n("example");
    let qname = n("ns1.example");
    let rrs = recs(B2_NO_DATA);
    // Unknown hash algorithm (RFC 5155 section 8.1), unknown flags (section 8.2).
    for bad in [
        map_nsec3(&rrs, |d| d.hash_algorithm = 2),
        map_nsec3(&rrs, |d| d.flags = 0x03),
        map_nsec3(&rrs, |d| d.next_hashed_owner = vec![0; 19].into()),
    ] {
        assert_eq!(
            prove_nodata(&zone, &bad, &qname, RType::MX, &mut budget()),
            missing(Missing::ClosestEncloser)
        );
    }
    // An owner not directly below the zone, or not a hash.
    for owner in [
        "2t7b4g4vsa5smi47k61mv5bv1a22bojr.sub.example.",
        "2t7b4g4vsa5smi47k61mv5bv1a22bojr.example.org.",
        "www.example.",
    ] {
        let moved = recs(&B2_NO_DATA.replace("2t7b4g4vsa5smi47k61mv5bv1a22bojr.example.", owner));
        assert_eq!(
            prove_nodata(&zone, &moved, &qname, RType::MX, &mut budget()),
            missing(Missing::ClosestEncloser),
            "{owner}"
        );
    }
    // Upper-case hashes and zone names are the same records.
    let upper = recs(&B2_NO_DATA.replace(
        "2t7b4g4vsa5smi47k61mv5bv1a22bojr.example.",
        "2T7B4G4VSA5SMI47K61MV5BV1A22BOJR.EXAMPLE.",
    ));
    assert_eq!(
        prove_nodata(&zone, &upper, &qname, RType::MX, &mut budget()),
        secure(Denial::NoData)
    );
    // Records with different parameters: bogus (RFC 5155 section 8.2).
    let mut mixed = recs(B1_NAME_ERROR);
    mixed[1] = map_nsec3(&mixed[1..2], |d| d.salt = vec![1].into())[0].clone();
    let err = prove_nxdomain(&zone, &mixed, &n("a.c.x.w.example"), &mut budget()).unwrap_err();
    assert_eq!(err, DenialError::MixedNsec3Parameters);
    assert_eq!(err.reason(), BogusReason::Other);
}

#[test]
fn nsec3_no_data_without_a_match_needs_opt_out() {
    // RFC 5155 section 8.6 and erratum 3441: no record matches, the closest encloser proof's
    // next closer is covered by an opt-out record: insecure; without opt-out, no proof.
    let zone = n("example");
    let rrs = recs(B3_OPT_OUT_REFERRAL);
    assert_eq!(
        prove_nodata(&zone, &rrs, &n("c.example"), RType::A, &mut budget()),
        insecure_opt_out()
    );
    assert_eq!(
        prove_nodata(
            &zone,
            &clear_opt_out(&rrs),
            &n("c.example"),
            RType::A,
            &mut budget()
        ),
        missing(Missing::WildcardMatch)
    );
}

#[test]
fn nsec3_record_for_helper_finds_the_owner() {
    let chain = synthetic(0, 0);
    let r = record_for(&chain, "www.example");
    let RData::Nsec3(d) = &r.data else { panic!() };
    assert!(d.types.contains(RType::A));
}

// ---------------------------------------------------------------------------------------------
// RFC 4035 appendix B: NSEC.

/// The NSEC chain of RFC 4035 appendix A's example zone.
const RFC4035_CHAIN: &str = "
    example. 3600 IN NSEC a.example. NS SOA MX RRSIG NSEC DNSKEY
    a.example. 3600 IN NSEC ai.example. NS DS RRSIG NSEC
    ai.example. 3600 IN NSEC b.example. A HINFO AAAA RRSIG NSEC
    b.example. 3600 IN NSEC ns1.example. NS RRSIG NSEC
    ns1.example. 3600 IN NSEC ns2.example. A RRSIG NSEC
    ns2.example. 3600 IN NSEC *.w.example. A RRSIG NSEC
    *.w.example. 3600 IN NSEC x.w.example. MX RRSIG NSEC
    x.w.example. 3600 IN NSEC x.y.w.example. MX RRSIG NSEC
    x.y.w.example. 3600 IN NSEC xx.example. MX RRSIG NSEC
    xx.example. 3600 IN NSEC example. A HINFO AAAA RRSIG NSEC
";

/// The records of the chain owned by these names, in this order.
fn chain_records(owners: &[&str]) -> Vec<Record> {
    let all = recs(RFC4035_CHAIN);
    owners
        .iter()
        .map(|o| all.iter().find(|r| r.name == n(o)).unwrap().clone())
        .collect()
}

#[test]
fn rfc4035_b2_name_error() {
    let zone = n("example");
    let qname = n("ml.example");
    // b.example covers ml.example; example. covers *.example.
    let rrs = chain_records(&["b.example", "example"]);
    assert_eq!(
        prove_nxdomain(&zone, &rrs, &qname, &mut budget()),
        secure(Denial::NxDomain)
    );
    let roles = [Missing::NameCover, Missing::WildcardCover];
    for (i, role) in roles.into_iter().enumerate() {
        assert_eq!(
            prove_nxdomain(&zone, &without(&rrs, i), &qname, &mut budget()),
            missing(role),
            "without record {i}"
        );
    }
    // Ranges moved: b.example ending before ml.example, example. ending before *.example.
    let mut moved = rrs.clone();
    moved[0] = recs("b.example. 3600 IN NSEC mk.example. NS RRSIG NSEC").remove(0);
    assert_eq!(
        prove_nxdomain(&zone, &moved, &qname, &mut budget()),
        missing(Missing::NameCover)
    );
    let mut moved = rrs.clone();
    moved[1] = recs("example. 3600 IN NSEC *.example. NS SOA MX RRSIG NSEC DNSKEY").remove(0);
    assert_eq!(
        prove_nxdomain(&zone, &moved, &qname, &mut budget()),
        missing(Missing::WildcardCover)
    );
    // The whole chain proves it too, and is no NXDOMAIN for names that exist.
    let all = recs(RFC4035_CHAIN);
    assert_eq!(
        prove_nxdomain(&zone, &all, &qname, &mut budget()),
        secure(Denial::NxDomain)
    );
    for exists in ["ai.example", "y.w.example", "example"] {
        assert_eq!(
            prove_nxdomain(&zone, &all, &n(exists), &mut budget()),
            contradicted(Contradiction::NameExists),
            "{exists}"
        );
    }
}

#[test]
fn rfc4035_b3_no_data() {
    let zone = n("example");
    let qname = n("ns1.example");
    let rrs = chain_records(&["ns1.example"]);
    assert_eq!(
        prove_nodata(&zone, &rrs, &qname, RType::MX, &mut budget()),
        secure(Denial::NoData)
    );
    // Without it (another record of the chain, so that the NSEC rules apply).
    let other = chain_records(&["ai.example"]);
    assert_eq!(
        prove_nodata(&zone, &other, &qname, RType::MX, &mut budget()),
        missing(Missing::Match)
    );
    assert_eq!(
        prove_nodata(&zone, &rrs, &qname, RType::A, &mut budget()),
        contradicted(Contradiction::TypeExists)
    );
    // The record says nothing of ns2.example's types: it only covers nothing.
    assert_eq!(
        prove_nodata(&zone, &rrs, &n("ns2.example"), RType::MX, &mut budget()),
        missing(Missing::Match)
    );
}

#[test]
fn rfc4035_b4_referral_to_signed_zone() {
    // The referral to a.example carries its DS and no NSEC: nothing proves it insecure, and the
    // zone's NSEC at a.example shows the DS.
    let zone = n("example");
    let other = chain_records(&["ai.example"]);
    assert_eq!(
        prove_insecure_delegation(&zone, &other, &n("a.example"), &mut budget()),
        missing(Missing::Match)
    );
    let rrs = chain_records(&["a.example"]);
    assert_eq!(
        prove_insecure_delegation(&zone, &rrs, &n("a.example"), &mut budget()),
        contradicted(Contradiction::DsExists)
    );
    assert_eq!(
        prove_nodata(&zone, &rrs, &n("a.example"), RType::DS, &mut budget()),
        contradicted(Contradiction::TypeExists)
    );
}

#[test]
fn rfc4035_b5_referral_to_unsigned_zone() {
    let zone = n("example");
    let rrs = chain_records(&["b.example"]);
    assert_eq!(
        prove_insecure_delegation(&zone, &rrs, &n("b.example"), &mut budget()),
        secure(Denial::InsecureDelegation)
    );
    assert_eq!(
        prove_nodata(&zone, &rrs, &n("b.example"), RType::DS, &mut budget()),
        secure(Denial::InsecureDelegation)
    );
    let other = chain_records(&["ai.example"]);
    assert_eq!(
        prove_insecure_delegation(&zone, &other, &n("b.example"), &mut budget()),
        missing(Missing::Match)
    );
    // With DS or SOA set it proves no insecure delegation (RFC 6840 section 4.4).
    for (types, c) in [
        ("NS DS RRSIG NSEC", Contradiction::DsExists),
        ("NS SOA RRSIG NSEC", Contradiction::ChildSide),
        ("A RRSIG NSEC", Contradiction::NotDelegation),
    ] {
        let changed = recs(&format!("b.example. 3600 IN NSEC ns1.example. {types}"));
        assert_eq!(
            prove_insecure_delegation(&zone, &changed, &n("b.example"), &mut budget()),
            contradicted(c),
            "{types}"
        );
    }
    // The record covers mc.b.example in canonical order, but the parent has no say below its
    // zone cut (RFC 6840 section 4.1): no NXDOMAIN, and no NODATA at the cut but for DS.
    assert_eq!(
        prove_nxdomain(&zone, &rrs, &n("mc.b.example"), &mut budget()),
        missing(Missing::NameCover)
    );
    assert_eq!(
        prove_nodata(&zone, &rrs, &n("b.example"), RType::MX, &mut budget()),
        contradicted(Contradiction::Delegation)
    );
}

#[test]
fn rfc4035_b6_wildcard_expansion() {
    let zone = n("example");
    let qname = n("a.z.w.example");
    // x.y.w.example's NSEC covers the next closer z.w.example.
    let rrs = chain_records(&["x.y.w.example"]);
    assert_eq!(
        prove_wildcard_answer(&zone, &rrs, &qname, 2, &mut budget()),
        secure(Denial::WildcardAnswer)
    );
    assert_eq!(
        prove_wildcard_answer(&zone, &[], &qname, 2, &mut budget()),
        missing(Missing::NextCloserCover)
    );
    let moved = recs("x.y.w.example. 3600 IN NSEC z.w.example. MX RRSIG NSEC");
    assert_eq!(
        prove_wildcard_answer(&zone, &moved, &qname, 2, &mut budget()),
        missing(Missing::NextCloserCover)
    );
    // An NSEC showing z.w.example to exist (an empty non-terminal above b.z.w.example) makes
    // the expansion wrong.
    let ent = recs("x.y.w.example. 3600 IN NSEC b.z.w.example. MX RRSIG NSEC");
    assert_eq!(
        prove_wildcard_answer(&zone, &ent, &qname, 2, &mut budget()),
        contradicted(Contradiction::NameExists)
    );
    // Covering the question alone is not enough: this record covers a.z.w.example, but it sits
    // at the next closer name z.w.example, which therefore exists.
    let qname_only = recs("z.w.example. 3600 IN NSEC b.z.w.example. A RRSIG NSEC");
    assert_eq!(
        prove_wildcard_answer(&zone, &qname_only, &qname, 2, &mut budget()),
        contradicted(Contradiction::NameExists)
    );
}

#[test]
fn rfc4035_b7_wildcard_no_data() {
    let zone = n("example");
    let qname = n("a.z.w.example");
    let rrs = chain_records(&["x.y.w.example", "*.w.example"]);
    assert_eq!(
        prove_nodata(&zone, &rrs, &qname, RType::AAAA, &mut budget()),
        secure(Denial::WildcardNoData)
    );
    let roles = [Missing::Match, Missing::WildcardMatch];
    for (i, role) in roles.into_iter().enumerate() {
        assert_eq!(
            prove_nodata(&zone, &without(&rrs, i), &qname, RType::AAAA, &mut budget()),
            missing(role),
            "without record {i}"
        );
    }
    assert_eq!(
        prove_nodata(&zone, &rrs, &qname, RType::MX, &mut budget()),
        contradicted(Contradiction::TypeExists)
    );
    assert_eq!(
        prove_nxdomain(&zone, &rrs, &qname, &mut budget()),
        contradicted(Contradiction::WildcardExists)
    );
}

#[test]
fn rfc4035_b8_ds_from_the_child_zone_proves_nothing() {
    let zone = n("example");
    let rrs = chain_records(&["example"]);
    assert_eq!(
        prove_nodata(&zone, &rrs, &n("example"), RType::DS, &mut budget()),
        contradicted(Contradiction::ChildSide)
    );
    // The root has no parent: its own apex denies its DS.
    let root = recs(". 86400 IN NSEC aaa. NS SOA RRSIG NSEC DNSKEY");
    assert_eq!(
        prove_nodata(
            &Name::root(),
            &root,
            &Name::root(),
            RType::DS,
            &mut budget()
        ),
        secure(Denial::InsecureDelegation)
    );
}

#[test]
fn nsec_empty_non_terminal_and_wrap_around() {
    let zone = n("example");
    // y.w.example exists only as the parent of x.y.w.example.
    let ent = chain_records(&["x.w.example"]);
    assert_eq!(
        prove_nodata(&zone, &ent, &n("y.w.example"), RType::A, &mut budget()),
        secure(Denial::NoData)
    );
    assert_eq!(
        prove_nodata(&zone, &ent, &n("y.w.example"), RType::DS, &mut budget()),
        secure(Denial::NoData)
    );
    // The zone's last NSEC ends at the apex and covers every name after xx.example.
    let rrs = chain_records(&["xx.example", "example"]);
    assert_eq!(
        prove_nxdomain(&zone, &rrs, &n("zz.example"), &mut budget()),
        secure(Denial::NxDomain)
    );
    assert_eq!(
        prove_nxdomain(&zone, &rrs[1..], &n("zz.example"), &mut budget()),
        missing(Missing::NameCover)
    );
    // A name below a DNAME is not denied by the DNAME owner's NSEC (RFC 6840 section 4.1).
    let dname = recs("d.example. 3600 IN NSEC e.example. DNAME RRSIG NSEC\nexample. 3600 IN NSEC a.example. NS SOA RRSIG NSEC");
    assert_eq!(
        prove_nxdomain(&zone, &dname, &n("x.d.example"), &mut budget()),
        missing(Missing::NameCover)
    );
    // Records of another zone are ignored, and questions outside the zone refused.
    let other = recs("b.example.org. 3600 IN NSEC z.example.org. A RRSIG NSEC");
    assert_eq!(
        prove_nodata(&zone, &other, &n("c.example"), RType::A, &mut budget()),
        missing(Missing::ClosestEncloser)
    );
    assert!(matches!(
        prove_nodata(&zone, &ent, &n("c.example.org"), RType::A, &mut budget()),
        Err(DenialError::OutsideZone { .. })
    ));
}

#[test]
fn nsec_cover_follows_rfc4034_canonical_order() {
    // RFC 4034 section 6.1's example list, in canonical order.
    let names = [
        "example.",
        "a.example.",
        "yljkjljk.a.example.",
        "Z.a.example.",
        "zABC.a.EXAMPLE.",
        "z.example.",
        "\\001.z.example.",
        "*.z.example.",
        "\\200.z.example.",
    ];
    let zone = n("example");
    let nsec = |owner: &str, next: &str| {
        recs(&format!("{owner} 3600 IN NSEC {next} A RRSIG NSEC")).remove(0)
    };
    let covers = |rec: &Record, name: &str| {
        nsec::NsecRef::new(&zone, rec).is_some_and(|r| r.covers(&zone, &n(name)))
    };
    for w in names.windows(2) {
        // Adjacent names: the NSEC between them covers none of the list.
        let rec = nsec(w[0], w[1]);
        for name in names {
            assert!(!covers(&rec, name), "{} -> {} covers {name}", w[0], w[1]);
        }
    }
    for w in names.windows(3) {
        // One name apart: exactly the middle one is covered.
        let rec = nsec(w[0], w[2]);
        for name in names {
            assert_eq!(
                covers(&rec, name),
                name == w[1],
                "{} -> {}: {name}",
                w[0],
                w[2]
            );
        }
    }
    // The last record wraps to the apex: it covers names after it, not before.
    let last = nsec("\\200.z.example.", "example.");
    assert!(covers(&last, "zz.example."));
    assert!(covers(&last, "a.\\200.z.example."));
    assert!(!covers(&last, "z.example."));
    assert!(!covers(&last, "example."));
    assert!(!covers(&last, "zz.example.org."));
    // Case does not matter.
    assert!(covers(&nsec("A.EXAMPLE.", "Z.EXAMPLE."), "m.example."));
}

// ---------------------------------------------------------------------------------------------
// Aggressive use of the cache (RFC 8198).

#[test]
fn cached_nsec_facts() {
    let zone = n("example");
    let chain = recs(RFC4035_CHAIN);
    let rec = |owner: &str| chain.iter().find(|r| r.name == n(owner)).unwrap();
    let fact = |owner: &str, qname: &str, qtype: RType| {
        cached_fact(&zone, rec(owner), &n(qname), qtype, &mut budget()).unwrap()
    };
    // ml.example is absent: check *.example next, which example.'s NSEC shows absent too.
    assert_eq!(
        fact("b.example", "ml.example", RType::A),
        CachedFact::NameAbsent {
            wildcard: Some(n("*.example"))
        }
    );
    assert!(matches!(
        fact("example", "*.example", RType::A),
        CachedFact::NameAbsent { .. }
    ));
    assert_eq!(
        fact("ns1.example", "ns1.example", RType::MX),
        CachedFact::NoData
    );
    assert_eq!(
        fact("ns1.example", "ns1.example", RType::A),
        CachedFact::Unknown
    );
    assert_eq!(
        fact("x.w.example", "y.w.example", RType::A),
        CachedFact::NoData
    );
    // a.z.w.example is absent, and its wildcard *.w.example has MX but no AAAA.
    assert_eq!(
        fact("x.y.w.example", "a.z.w.example", RType::AAAA),
        CachedFact::NameAbsent {
            wildcard: Some(n("*.w.example"))
        }
    );
    assert_eq!(
        fact("*.w.example", "*.w.example", RType::AAAA),
        CachedFact::NoData
    );
    assert_eq!(
        fact("*.w.example", "*.w.example", RType::MX),
        CachedFact::Unknown
    );
    // Below a delegation, and for names the record does not cover: nothing.
    assert_eq!(
        fact("b.example", "mc.b.example", RType::A),
        CachedFact::Unknown
    );
    assert_eq!(
        fact("b.example", "b.example", RType::DS),
        CachedFact::NoData
    );
    assert_eq!(
        fact("b.example", "zz.example", RType::A),
        CachedFact::Unknown
    );
    assert_eq!(
        fact("b.example", "ml.example.org", RType::A),
        CachedFact::Unknown
    );
    // Not a denial record at all.
    let a = recs("ml.example. 3600 IN A 192.0.2.1").remove(0);
    assert_eq!(
        cached_fact(&zone, &a, &n("ml.example"), RType::A, &mut budget()).unwrap(),
        CachedFact::Unknown
    );
}

#[test]
fn cached_nsec3_facts() {
    let zone = n("example");
    let b2 = recs(B2_NO_DATA).remove(0);
    let fact = |rec: &Record, qname: &str, qtype: RType, b: &mut HashBudget| {
        cached_fact(&zone, rec, &n(qname), qtype, b).unwrap()
    };
    let mut b = budget();
    assert_eq!(
        fact(&b2, "ns1.example", RType::MX, &mut b),
        CachedFact::NoData
    );
    assert_eq!(
        fact(&b2, "ns1.example", RType::A, &mut b),
        CachedFact::Unknown
    );
    assert_eq!(b.remaining(), MAX_NSEC3_HASHES_PER_QUERY - 2);
    // 0p9mh... covers c.x.w.example: with opt-out that proves nothing; without, absence.
    let apex = recs(B1_NAME_ERROR).remove(0);
    assert_eq!(
        fact(&apex, "c.x.w.example", RType::A, &mut b),
        CachedFact::Unknown
    );
    let apex_clear = clear_opt_out(&[apex]).remove(0);
    assert_eq!(
        fact(&apex_clear, "c.x.w.example", RType::A, &mut b),
        CachedFact::NameAbsent { wildcard: None }
    );
    // Above the iterations cutoff: nothing, and no hashing.
    let high = map_nsec3(&[apex_clear], |d| d.iterations = MAX_NSEC3_ITERATIONS + 1).remove(0);
    let before = b.remaining();
    assert_eq!(
        fact(&high, "c.x.w.example", RType::A, &mut b),
        CachedFact::Unknown
    );
    assert_eq!(b.remaining(), before);
    let mut empty = HashBudget::with_limit(0);
    assert_eq!(
        cached_fact(&zone, &b2, &n("ns1.example"), RType::MX, &mut empty),
        Err(DenialError::HashBudgetExhausted)
    );
}

#[test]
fn aggressive_denial_answers_only_what_is_securely_proven() {
    let zone = n("example");
    let all = recs(RFC4035_CHAIN);
    let ask = |rrs: &[Record], qname: &str, qtype: RType| {
        aggressive_denial(&zone, rrs, &n(qname), qtype, &mut budget())
    };
    assert_eq!(ask(&all, "ml.example", RType::A), Some(Denial::NxDomain));
    assert_eq!(ask(&all, "ns1.example", RType::MX), Some(Denial::NoData));
    assert_eq!(
        ask(&all, "a.z.w.example", RType::AAAA),
        Some(Denial::WildcardNoData)
    );
    assert_eq!(
        ask(&all, "b.example", RType::DS),
        Some(Denial::InsecureDelegation)
    );
    // Names that exist with the type, wildcard answers and names below a cut: ask upstream.
    assert_eq!(ask(&all, "ns1.example", RType::A), None);
    assert_eq!(ask(&all, "a.z.w.example", RType::MX), None);
    assert_eq!(ask(&all, "mc.b.example", RType::A), None);
    // NSEC3 with opt-out proves nothing; the same records without it do.
    let b1 = recs(B1_NAME_ERROR);
    assert_eq!(ask(&b1, "a.c.x.w.example", RType::A), None);
    assert_eq!(
        ask(&clear_opt_out(&b1), "a.c.x.w.example", RType::A),
        Some(Denial::NxDomain)
    );
    assert_eq!(ask(&synthetic(51, 0), "nope.example", RType::A), None);
}

#[test]
fn errors_map_to_bogus_reasons() {
    assert_eq!(
        DenialError::Missing(Missing::NameCover).reason(),
        BogusReason::NsecMissing
    );
    assert_eq!(BogusReason::NsecMissing.ede(), ede::NSEC_MISSING);
    for e in [
        DenialError::Contradicted(Contradiction::NameExists),
        DenialError::HashBudgetExhausted,
        DenialError::MixedNsec3Parameters,
    ] {
        assert_eq!(e.reason(), BogusReason::Other, "{e}");
    }
    assert_eq!(
        DenialError::Missing(Missing::NextCloserCover).to_string(),
        "no NSEC/NSEC3 record covers the next closer name"
    );
}

#[test]
fn nsec_closest_encloser_may_be_an_empty_non_terminal() {
    // a.y.w.example: x.w.example's NSEC covers it and names x.y.w.example next, so the closest
    // encloser is the empty non-terminal y.w.example, not w.example, and the wildcard that
    // matters is *.y.w.example (which the same record covers), not *.w.example (which exists).
    let zone = n("example");
    let qname = n("a.y.w.example");
    let rrs = chain_records(&["x.w.example"]);
    assert_eq!(
        prove_nxdomain(&zone, &rrs, &qname, &mut budget()),
        secure(Denial::NxDomain)
    );
    assert_eq!(
        prove_nxdomain(&zone, &recs(RFC4035_CHAIN), &qname, &mut budget()),
        secure(Denial::NxDomain)
    );
    assert_eq!(
        cached_fact(&zone, &rrs[0], &qname, RType::A, &mut budget()).unwrap(),
        CachedFact::NameAbsent {
            wildcard: Some(n("*.y.w.example"))
        }
    );
}

#[test]
fn nsec_wrap_around_only_at_the_apex() {
    // A record whose next name sorts before its owner covers names only when that next name is
    // the apex (the zone's last NSEC, RFC 4034 section 4.1.1).
    let zone = n("example");
    let bad = recs("m.example. 3600 IN NSEC c.example. A RRSIG NSEC");
    for name in ["z.example", "b.example", "d.example"] {
        assert_eq!(
            prove_nodata(&zone, &bad, &n(name), RType::A, &mut budget()),
            missing(Missing::Match),
            "{name}"
        );
    }
    let good = recs("m.example. 3600 IN NSEC example. A RRSIG NSEC");
    let rec = nsec::NsecRef::new(&zone, &good[0]).unwrap();
    assert!(rec.covers(&zone, &n("z.example")));
    assert!(!rec.covers(&zone, &n("d.example")));
}

#[test]
fn nsec3_cover_and_wrap_around() {
    let zone = n("example");
    let record = |owner: u8, next: u8| {
        let mut o = [0u8; NSEC3_HASH_LEN];
        o[0] = owner;
        let mut x = [0u8; NSEC3_HASH_LEN];
        x[0] = next;
        Record::new(
            n(&format!("{}.example", base32hex_encode(&o))),
            3600,
            RData::Nsec3(Nsec3 {
                hash_algorithm: NSEC3_SHA1,
                flags: 1,
                iterations: 0,
                salt: Box::new([]),
                next_hashed_owner: x.into(),
                types: TypeBitmap::default(),
            }),
        )
    };
    let h = |first: u8| {
        let mut v = [0u8; NSEC3_HASH_LEN];
        v[0] = first;
        v
    };
    let covers = |rec: &Record, first: u8| {
        nsec3::Nsec3Ref::new(&zone, rec).is_some_and(|r| r.covers(&h(first)))
    };
    let matches = |rec: &Record, first: u8| {
        nsec3::Nsec3Ref::new(&zone, rec).is_some_and(|r| r.matches(&h(first)))
    };
    let plain = record(0x10, 0x30);
    assert!(covers(&plain, 0x20));
    assert!(!covers(&plain, 0x10) && !covers(&plain, 0x30) && !covers(&plain, 0x40));
    assert!(matches(&plain, 0x10) && !matches(&plain, 0x30));
    // The chain's last record wraps to its first.
    let last = record(0xf0, 0x10);
    assert!(covers(&last, 0xf8) && covers(&last, 0x05));
    assert!(!covers(&last, 0x80) && !covers(&last, 0xf0) && !covers(&last, 0x10));
    // A chain of one record covers every other hash.
    let only = record(0x80, 0x80);
    assert!(covers(&only, 0x00) && covers(&only, 0xff) && !covers(&only, 0x80));
}
