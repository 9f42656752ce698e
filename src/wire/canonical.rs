//! Canonical form and order of records (RFC 4034 section 6, RFC 6840 section 5.1), the input of
//! DNSSEC signatures.
//!
//! ```text
//!   RRSIG RDATA minus signature | RR(1) | RR(2) | ...     (RFC 4034 section 3.1.8.1)
//!   RR(i) = owner | type | class | original TTL | RDLENGTH | canonical RDATA,
//!           sorted by canonical RDATA (section 6.3), duplicates removed
//! ```
//!
//! Canonical form: no compression, owner lower-cased, and the names inside the RDATA of the types
//! RFC 4034 section 6.2 item 3 lists (minus NSEC, RFC 6840 section 5.1) lower-cased; see
//! [`super::rdata::lowercased_in_canonical_form`]. Other types (NSEC, SVCB, ...) keep their
//! names' case.
//!
//! Limitations: the wildcard owner rule of RFC 4035 section 5.3.2 is applied by [`signed_data`] only
//! from the RRSIG labels field; checking validity periods, key tags and algorithms is the
//! validator's job.

use std::cmp::Ordering;

use super::builder::MessageBuilder;
use super::error::{Result, WireError};
use super::message::Record;
use super::name::Name;
use super::rdata::{write_rrsig_fields, RData, Rrsig};

impl RData {
    /// Appends the canonical form of this RDATA (RFC 4034 section 6.2): uncompressed, with embedded
    /// names lower-cased for the types that require it. Fails only for data `write` would refuse.
    pub fn write_canonical(&self, out: &mut Vec<u8>) -> Result<()> {
        let mut b = MessageBuilder::uncompressed();
        self.write_with(&mut b, true)?;
        out.extend_from_slice(b.as_slice());
        Ok(())
    }

    /// The canonical form as a new vector.
    pub fn to_canonical(&self) -> Result<Vec<u8>> {
        let mut out = Vec::new();
        self.write_canonical(&mut out)?;
        Ok(out)
    }
}

impl Record {
    /// Appends the canonical form of the whole record with `original_ttl` in place of its TTL (the
    /// TTL covered by a signature is the RRSIG's Original TTL, RFC 4034 section 3.1.8.1).
    pub fn write_canonical(&self, original_ttl: u32, out: &mut Vec<u8>) -> Result<()> {
        write_canonical_rr(&self.name, self, original_ttl, out)
    }
}

fn write_canonical_rr(owner: &Name, rec: &Record, ttl: u32, out: &mut Vec<u8>) -> Result<()> {
    out.extend(owner.as_wire().iter().map(u8::to_ascii_lowercase));
    out.extend_from_slice(&rec.rtype().0.to_be_bytes());
    out.extend_from_slice(&rec.class.0.to_be_bytes());
    out.extend_from_slice(&ttl.to_be_bytes());
    let len_at = out.len();
    out.extend_from_slice(&[0, 0]);
    rec.data.write_canonical(out)?;
    let len = u16::try_from(out.len() - len_at - 2).map_err(|_| WireError::MessageTooLarge)?;
    out[len_at..len_at + 2].copy_from_slice(&len.to_be_bytes());
    Ok(())
}

/// Canonical RR ordering within an RRset (RFC 4034 section 6.3): RDATA in canonical form compared
/// as left-justified unsigned octet strings (a shorter prefix sorts first). Data that cannot be
/// encoded sorts after all data that can.
pub fn canonical_rdata_cmp(a: &RData, b: &RData) -> Ordering {
    match (a.to_canonical(), b.to_canonical()) {
        (Ok(x), Ok(y)) => x.cmp(&y),
        (Ok(_), Err(_)) => Ordering::Less,
        (Err(_), Ok(_)) => Ordering::Greater,
        (Err(_), Err(_)) => Ordering::Equal,
    }
}

/// The octets an RRSIG signs (RFC 4034 section 3.1.8.1): its RDATA up to the signer's name
/// (lower-cased) and then every record of `rrset` in canonical form and order, duplicates removed,
/// each with the RRSIG's Original TTL. When the RRSIG's labels field is smaller than the owner's
/// label count, the owner is the wildcard it was expanded from (RFC 4035 section 5.3.2).
///
/// Every record must belong to one RRset (same owner, class and type); the caller checks that the
/// type is the RRSIG's type covered.
pub fn signed_data(rrsig: &Rrsig, rrset: &[Record]) -> Result<Vec<u8>> {
    let mut b = MessageBuilder::uncompressed();
    write_rrsig_fields(&mut b, rrsig);
    b.put_name(&rrsig.signer_name.to_lowercase(), false);
    let mut out = b.finish();
    let Some(first) = rrset.first() else {
        return Ok(out);
    };
    if rrset
        .iter()
        .any(|r| r.name != first.name || r.class != first.class || r.rtype() != first.rtype())
    {
        return Err(WireError::BadText(
            "records of more than one RRset given to signed_data".into(),
        ));
    }
    let labels = usize::from(rrsig.labels);
    let owner = if labels < first.name.label_count() {
        first.name.trim_to(labels).prepend(b"*")?
    } else {
        first.name.clone()
    };
    let mut rdatas = rrset
        .iter()
        .map(|r| r.data.to_canonical().map(|c| (c, r)))
        .collect::<Result<Vec<_>>>()?;
    rdatas.sort_by(|a, b| a.0.cmp(&b.0));
    rdatas.dedup_by(|a, b| a.0 == b.0);
    for (_, rec) in rdatas {
        write_canonical_rr(&owner, rec, rrsig.original_ttl, &mut out)?;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::rdata::{Soa, TypeBitmap};
    use crate::wire::types::{Class, RType};

    fn n(s: &str) -> Name {
        s.parse().unwrap()
    }

    #[test]
    fn lowercases_names_only_for_listed_types() {
        let mx = RData::Mx {
            preference: 10,
            exchange: n("Mail.Example.COM"),
        };
        let mut out = Vec::new();
        mx.write_canonical(&mut out).unwrap();
        let mut want = vec![0, 10];
        want.extend_from_slice(n("mail.example.com").as_wire());
        assert_eq!(out, want);

        // RFC 6840 section 5.1: NSEC's next name keeps its case.
        let nsec = RData::Nsec {
            next: n("B.Example"),
            types: TypeBitmap::new([RType::A]),
        };
        let c = nsec.to_canonical().unwrap();
        assert_eq!(&c[..11], n("B.Example").as_wire());
        assert_eq!(c[1], b'B');

        let soa = RData::Soa(Soa {
            mname: n("NS1.Example"),
            rname: n("Host.Example"),
            serial: 1,
            refresh: 2,
            retry: 3,
            expire: 4,
            minimum: 5,
        });
        let c = soa.to_canonical().unwrap();
        assert!(!c.iter().any(u8::is_ascii_uppercase));

        // SVCB is not listed: the target keeps its case.
        let svcb = RData::Svcb(crate::wire::rdata::Svcb {
            priority: 1,
            target: n("Svc.Example"),
            params: vec![],
        });
        assert!(svcb.to_canonical().unwrap().contains(&b'S'));

        let rrsig = RData::Rrsig(Rrsig {
            type_covered: RType::A,
            algorithm: 8,
            labels: 2,
            original_ttl: 300,
            expiration: 2,
            inception: 1,
            key_tag: 7,
            signer_name: n("EXAMPLE"),
            signature: Box::new([1, 2, 3]),
        });
        assert!(!rrsig.to_canonical().unwrap()[18..26]
            .iter()
            .any(u8::is_ascii_uppercase));
    }

    #[test]
    fn canonical_names_are_never_compressed() {
        let soa = RData::Soa(Soa {
            mname: n("a.example"),
            rname: n("b.example"),
            serial: 1,
            refresh: 2,
            retry: 3,
            expire: 4,
            minimum: 5,
        });
        let c = soa.to_canonical().unwrap();
        assert_eq!(c.len(), 11 + 11 + 20);
    }

    #[test]
    fn record_canonical_form_uses_original_ttl_and_lowercase_owner() {
        let rec = Record::new(n("WWW.Example"), 60, RData::A([192, 0, 2, 1].into()));
        let mut out = Vec::new();
        rec.write_canonical(3600, &mut out).unwrap();
        let mut want = n("www.example").as_wire().to_vec();
        want.extend_from_slice(&[0, 1, 0, 1, 0, 0, 0x0E, 0x10, 0, 4, 192, 0, 2, 1]);
        assert_eq!(out, want);
    }

    #[test]
    fn rdata_order_is_octet_order_with_shorter_first() {
        let a = |s: &[u8]| RData::Txt(vec![s.into()]);
        // "\x01a" < "\x02aa" since the length octet comes first.
        assert_eq!(canonical_rdata_cmp(&a(b"b"), &a(b"aa")), Ordering::Less);
        assert_eq!(canonical_rdata_cmp(&a(b"ab"), &a(b"aa")), Ordering::Greater);
        let x = RData::Unknown {
            rtype: RType(65000),
            data: Box::new([1, 2]),
        };
        let y = RData::Unknown {
            rtype: RType(65000),
            data: Box::new([1, 2, 0]),
        };
        assert_eq!(canonical_rdata_cmp(&x, &y), Ordering::Less);
        // Case does not matter where names are lower-cased.
        let ns1 = RData::Ns(n("A.example"));
        let ns2 = RData::Ns(n("a.EXAMPLE"));
        assert_eq!(canonical_rdata_cmp(&ns1, &ns2), Ordering::Equal);
        // Unencodable data sorts last.
        assert_eq!(
            canonical_rdata_cmp(&RData::Txt(vec![]), &a(b"z")),
            Ordering::Greater
        );
    }

    #[test]
    fn signed_data_sorts_dedups_and_expands_wildcards() {
        let rrsig = Rrsig {
            type_covered: RType::A,
            algorithm: 13,
            labels: 2,
            original_ttl: 100,
            expiration: 0x6000_0000,
            inception: 0x5000_0000,
            key_tag: 12345,
            signer_name: n("Example.COM"),
            signature: Box::new([0xAA; 64]),
        };
        let owner = n("Host.Sub.Example.com");
        let rrset = [
            Record::new(owner.clone(), 5, RData::A([10, 0, 0, 2].into())),
            Record::new(owner.clone(), 5, RData::A([10, 0, 0, 1].into())),
            Record::new(owner.clone(), 5, RData::A([10, 0, 0, 2].into())),
        ];
        let data = signed_data(&rrsig, &rrset).unwrap();
        let mut want = vec![
            0, 1, 13, 2, 0, 0, 0, 100, 0x60, 0, 0, 0, 0x50, 0, 0, 0, 0x30, 0x39,
        ];
        want.extend_from_slice(n("example.com").as_wire());
        for last in [1u8, 2] {
            want.extend_from_slice(n("*.example.com").as_wire());
            want.extend_from_slice(&[0, 1, 0, 1, 0, 0, 0, 100, 0, 4, 10, 0, 0, last]);
        }
        assert_eq!(data, want);

        let mut other = rrset.to_vec();
        other[1].class = Class::CH;
        assert!(signed_data(&rrsig, &other).is_err());
    }
}
