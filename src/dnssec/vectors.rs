//! Known-answer test vectors, as zone text, from the RFCs and from the root and `net.` zones.
//!
//! Sources, transcribed by hand (each is cross-checked by a test: the key tags and DS digests the
//! RFCs state, and the signatures, must come out of our code):
//! - RFC 4034 section 5.4: the DNSKEY of `dskey.example.com.` (RSASHA1, tag 60485) and its SHA-1 DS.
//! - RFC 4035 appendices A and B.6: the zone signing key of `example.` (RSASHA1, 1024 bits) and
//!   the wildcard-expanded `a.z.w.example. MX` with its RRSIG: the only RFC signature with SHA-1,
//!   and the only one over a wildcard expansion.
//! - RFC 5702 section 6.1 (RSASHA256, a 512-bit key: ring cannot verify below 1024 bits, so only
//!   its key tag is a known answer) and 6.2 (RSASHA512, 1024 bits): `www.example.net. A`.
//! - RFC 6605 sections 6.1 (ECDSAP256SHA256) and 6.2 (ECDSAP384SHA384): keys, DS records and
//!   signatures over `www.example.net. A 192.0.2.1`.
//! - RFC 8080 section 6.1 (ED25519): keys, private keys, DS and the `example.com. MX` RRSIG. The
//!   RRSIG lines as printed lack the algorithm field and were signed with a labels field of 3
//!   for a two-label owner; erratum 4935 gives the corrected record (`MX 15 2 3600 ...`) and
//!   signature, used here. The printed signatures are kept to show (in a test) what they sign.
//! - RSASHA256 with 2048-bit keys, for which no RFC gives a signature: the root zone's DNSKEY
//!   RRset of May 2019 (KSK-2017 and that quarter's ZSK) with its RRSIG by KSK-2017, and the
//!   `net.` DNSKEY RRset of September 2021 (exponent 3) with its RRSIG: public DNS data as served
//!   then (NLnet Labs' `domain` crate tests the same records). The root keys are those of IANA's
//!   root-anchors.xml.
#![allow(dead_code)]

/// RFC 4034 section 5.4.
pub const RFC4034_DNSKEY: &str = "dskey.example.com. 86400 IN DNSKEY 256 3 5 ( \
    AQOeiiR0GOMYkDshWoSKz9XzfwJr1AYtsmx3TGkJaNXVbfi/ 2pHm822aJ5iI9BMzNXxeYCmZ \
    DRD99WYwYqUSdjMmmAphXdvx egXd/M5+X7OrzKBaMbCVdFLU Uh6DhweJBjEVv5f2wwjM9Xzc \
    nOf+EPbtG9DMBmADjFDc2w/r ljwvFw== ) ; key id = 60485";
pub const RFC4034_DS: &str =
    "dskey.example.com. 86400 IN DS 60485 5 1 ( 2BB183AF5F22588179A53B0A 98631FAD1A292118 )";

/// RFC 4035 appendix A: the zone signing key of `example.` (RSASHA1, 1024 bits, tag 38519), and
/// appendix B.6: an MX RRset expanded from `*.w.example.` with its RRSIG (labels 2).
pub const RFC4035_ZSK: &str = "example. 3600 IN DNSKEY 256 3 5 ( \
    AQOy1bZVvpPqhg4j7EJoM9rI3ZmyEx2OzDBVrZy/lvI5CQePxXHZS4i8dANH4DX3tbHol61e \
    k8EFMcsGXxKciJFHyhl94C+NwILQdzsUlSFovBZsyl/NX6yEbtw/xN9ZNcrbYvgjjZ/UVPZI \
    ySFNsgEYvh0z2542lzMKR4Dh8uZffQ== )";
pub const RFC4035_WILDCARD_MX: &str = "a.z.w.example. 3600 IN MX 1 ai.example.";
pub const RFC4035_WILDCARD_RRSIG: &str = "a.z.w.example. 3600 IN RRSIG MX 5 2 3600 \
    20040509183619 20040409183619 38519 example. ( \
    OMK8rAZlepfzLWW75Dxd63jy2wswESzxDKG2f9AMN1CytCd10cYISAxfAdvXSZ7xujKAtPbc \
    tvOQ2ofO7AZJ+d01EeeQTVBPq4/6KCWhqe2XTjnkVLNvvhnc0u28aoSsG0+4InvkkOHknKxw \
    4kX18MMR34i8lC36SR5xBni8vHI= )";
/// A moment inside the RFC 4035 signatures' validity (a day after their inception).
pub const RFC4035_NOW: u32 = 1_081_622_179;

/// RFC 5702 section 6.1 (512 bits).
pub const RFC5702_RSASHA256_DNSKEY: &str = "example.net. 3600 IN DNSKEY 256 3 8 ( \
    AwEAAcFcGsaxxdgiuuGmCkVImy4h99CqT7jwY3pexPGcnUFtR2Fh36BponcwtkZ4cAgtvd4Qs8PkxUdp6p/DlUmObdk= )";
pub const RFC5702_A: &str = "www.example.net. 3600 IN A 192.0.2.91";
pub const RFC5702_RSASHA256_RRSIG: &str = "www.example.net. 3600 IN RRSIG A 8 3 3600 \
    20300101000000 20000101000000 9033 example.net. ( \
    kRCOH6u7l0QGy9qpC9l1sLncJcOKFLJ7GhiUOibu4teYp5VE9RncriShZNz85mwlMgNEacFYK/lPtPiVYP4bwg== )";

/// RFC 5702 section 6.2 (1024 bits).
pub const RFC5702_RSASHA512_DNSKEY: &str = "example.net. 3600 IN DNSKEY 256 3 10 ( \
    AwEAAdHoNTOW+et86KuJOWRDp1pndvwb6Y83nSVXXyLA3DLroROUkN6X0O6pnWnjJQujX/AyhqFDxj13tOnD9u/1kTg7 \
    cV6rklMrZDtJCQ5PCl/D7QNPsgVsMu1J2Q8gpMpztNFLpPBz1bWXjDtaR7ZQBlZ3PFY12ZTSncorffcGmhOL )";
pub const RFC5702_RSASHA512_RRSIG: &str = "www.example.net. 3600 IN RRSIG A 10 3 3600 \
    20300101000000 20000101000000 3740 example.net. ( \
    tsb4wnjRUDnB1BUi+t6TMTXThjVnG+eCkWqjvvjhzQL1d0YRoOe0CbxrVDYd0xDtsuJRaeUw1ep94PzEWzr0iGYgZBWm \
    /zpq+9fOuagYJRfDqfReKBzMweOLDiNa8iP5g9vMhpuv6OPlvpXwm9Sa9ZXIbNl1MBGk0fthPgxdDLw= )";

/// RFC 6605 section 6.1.
pub const RFC6605_P256_DNSKEY: &str = "example.net. 3600 IN DNSKEY 257 3 13 ( \
    GojIhhXUN/u4v54ZQqGSnyhWJwaubCvTmeexv7bR6edb krSqQpF64cYbcB7wNcP+e+MAnLr+Wi9xMWyQLc8NAA== )";
pub const RFC6605_P256_DS: &str = "example.net. 3600 IN DS 55648 13 2 ( \
    b4c8c1fe2e7477127b27115656ad6256f424625bf5c1 e2770ce6d6e37df61d17 )";
pub const RFC6605_A: &str = "www.example.net. 3600 IN A 192.0.2.1";
pub const RFC6605_P256_RRSIG: &str = "www.example.net. 3600 IN RRSIG A 13 3 3600 ( \
    20100909100439 20100812100439 55648 example.net. \
    qx6wLYqmh+l9oCKTN6qIc+bw6ya+KJ8oMz0YP107epXA yGmt+3SNruPFKG7tZoLBLlUzGGus7ZwmwWep666VCw== )";

/// RFC 6605 section 6.2.
pub const RFC6605_P384_DNSKEY: &str = "example.net. 3600 IN DNSKEY 257 3 14 ( \
    xKYaNhWdGOfJ+nPrL8/arkwf2EY3MDJ+SErKivBVSum1 w/egsXvSADtNJhyem5RCOpgQ6K8X1DRSEkrbYQ+OB+v8 \
    /uX45NBwY8rp65F6Glur8I/mlVNgF6W/qTI37m40 )";
pub const RFC6605_P384_DS: &str = "example.net. 3600 IN DS 10771 14 4 ( \
    72d7b62976ce06438e9c0bf319013cf801f09ecc84b8 d7e9495f27e305c6a9b0563a9b5f4d288405c3008a946df983d6 )";
pub const RFC6605_P384_RRSIG: &str = "www.example.net. 3600 IN RRSIG A 14 3 3600 ( \
    20100909102025 20100812102025 10771 example.net. \
    /L5hDKIvGDyI1fcARX3z65qrmPsVz73QD1Mr5CEqOiLP 95hxQouuroGCeZOvzFaxsT8Glr74hbavRKayJNuydCuz \
    WTSSPdz7wnqXL5bdcJzusdnI0RSMROxxwGipWcJm )";

/// RFC 8080 section 6.1, first key, with the RRSIG of erratum 4935.
pub const RFC8080_ED25519_PRIVATE: &str = "ODIyNjAzODQ2MjgwODAxMjI2NDUxOTAyMDQxNDIyNjI=";
pub const RFC8080_ED25519_DNSKEY: &str =
    "example.com. 3600 IN DNSKEY 257 3 15 ( l02Woi0iS8Aa25FQkUd9RMzZHJpBoRQwAQEX1SxZJA4= )";
pub const RFC8080_ED25519_DS: &str = "example.com. 3600 IN DS 3613 15 2 ( \
    3aa5ab37efce57f737fc1627013fee07bdf241bd10f3b1964ab55c78e79 a304b )";
pub const RFC8080_MX: &str = "example.com. 3600 IN MX 10 mail.example.com.";
pub const RFC8080_ED25519_RRSIG: &str = "example.com. 3600 IN RRSIG MX 15 2 3600 ( \
    1440021600 1438207200 3613 example.com. \
    oL9krJun7xfBOIWcGHi7mag5/hdZrKWw15jPGrHpjQeRAvTdszaPD+QLs3fx8A4M3e23mRZ9VrbpMngwcrqNAg== )";
/// The signature RFC 8080 section 6.1 prints for the first key (labels field 3).
pub const RFC8080_ED25519_PRINTED_SIGNATURE: &str =
    "Edk+IB9KNNWg0HAjm7FazXyrd5m3Rk8zNZbvNpAcM+eysqcUOMIjWoevFkjH5GaMWeG96GUVZu6ECKOQmemHDg==";
/// RFC 8080 section 6.1, second key (tag 35217), and its printed signature (labels field 3).
pub const RFC8080_ED25519_PRIVATE_2: &str = "DSSF3o0s0f+ElWzj9E/Osxw8hLpk55chkmx0LYN5WiY=";
pub const RFC8080_ED25519_DNSKEY_2: &str =
    "example.com. 3600 IN DNSKEY 257 3 15 ( zPnZ/QwEe7S8C5SPz2OfS5RR40ATk2/rYnE9xHIEijs= )";
pub const RFC8080_ED25519_PRINTED_SIGNATURE_2: &str =
    "5LL2obmzdqjWI+Xto5eP5adXt/T5tMhasWvwcyW4L3SzfcRawOle9bodhC+oip9ayUGjY9T/rL4rN3bOuESGDA==";

/// The root KSKs (IANA root-anchors.xml).
pub const ROOT_KSK_2017: &str = ". 172800 IN DNSKEY 257 3 8 ( \
    AwEAAaz/tAm8yTn4Mfeh5eyI96WSVexTBAvkMgJzkKTOiW1vkIbzxeF3+/4RgWOq7HrxRixHlFlExOLAJr5emLvN7SWXgnLh4+B5xQlNVz8Og8kvArMtNROxVQuCaSnIDdD5LKyWbRd2n9WGe2R8PzgCmr3EgVLrjyBxWezF0jLHwVN8efS3rCj/EWgvIWgb9tarpVUDK/b58Da+sqqls3eNbuv7pr+eoZG+SrDK6nWeL3c6H5Apxz7LjVc1uTIdsIXxuOLYA4/ilBmSVIzuDWfdRUfhHdY6+cn8HFRm+2hM8AnXGXws9555KrUB5qihylGa8subX2Nn6UwNR1AkUTV74bU= )";
pub const ROOT_KSK_2024: &str = ". 172800 IN DNSKEY 257 3 8 ( \
    AwEAAa96jeuknZlaeSrvyAJj6ZHv28hhOKkx3rLGXVaC6rXTsDc449/cidltpkyGwCJNnOAlFNKF2jBosZBU5eeHspaQWOmOElZsjICMQMC3aeHbGiShvZsx4wMYSjH8e7Vrhbu6irwCzVBApESjbUdpWWmEnhathWu1jo+siFUiRAAxm9qyJNg/wOZqqzL/dL/q8PkcRU5oUKEpUge71M3ej2/7CPqpdVwuMoTvoB+ZOT4YeGyxMvHmbrxlFzGOHOijtzN+u1TQNatX2XBuzZNQ1K+s2CXkPIZo7s6JgZyvaBevYtxPvYLw4z9mR7K2vaF18UYH9Z9GNUUeayffKC73PYc= )";
pub const ROOT_DS_2017: &str =
    ". IN DS 20326 8 2 E06D44B80B8F1D39A95C0B0D7C65D08458E880409BBC683457104237C7F8EC8D";
pub const ROOT_DS_2024: &str =
    ". IN DS 38696 8 2 683D2D0ACB8C9B712A1948B27F741219298D0A450D612C483AF444A4C0FB2B16";

/// The root zone's ZSK of May 2019 and the RRSIG by KSK-2017 over {KSK-2017, this ZSK}.
pub const ROOT_ZSK_2019: &str = ". 172800 IN DNSKEY 256 3 8 ( \
    AwEAAeVDC34GZILwsQJy97K2Fst4P3XYZrXLyrkausYzSqEjSUulgh+iLgHg0y7FIF890+sIjXsk7KLJUmCOWfYWPorNKEOKLk5Zx/4M6D3IHZE3O3m/Eahrc28qQzmTLxiMZAW65MvR2UO3LxVtYOPBEBiDgAQD47x2JLsJYtavCzNL5WiUk59OgvHmDqmcC7VXYBhK8V8Tic089XJgExGeplKWUt9yyc31ra1swJX51XsOaQz17+vyLVH8AZP26KvKFiZeoRbaq6vl+hc8HQnI2ug5rA2zoz3MsSQBvP1f/HvqsWxLqwXXKyDD1QM639U+XzVB8CYigyscRP22QCnwKIU= )";
pub const ROOT_DNSKEY_RRSIG_2019: &str = ". 172800 IN RRSIG DNSKEY 8 0 172800 1560211200 1558396800 20326 . ( \
    otBkINZAQu7AvPKjr/xWIEE7+SoZtKgF8bzVynX6bfJMJuPay8jPvNmwXkZOdSoYlvFp0bk9JWJKCh8y5uoNfMFkN6OSrDkr3t0E+c8c0Mnmwkk5CETH3Gqxthi0yyRX5T4VlHU06/Ks4zI+XAgl3FBpOc554ivdzez8YCjAIGx7XgzzooEb7heMSlLc7S7/HNjw51TPRs4RxrAVcezieKCzPPpeWBhjE6R3oiSwrl0SBD4/yplrDlr7UHs/Atcm3MSgemdyr2sOoOUkVQCVpcj3SQQezoD2tCM7861CXEQdg5fjeHDtz285xHt5HJpA5cOcctRo4ihybfow/+V7AQ== )";
/// A moment inside that signature's validity (2019-05-28).
pub const ROOT_2019_NOW: u32 = 1_559_000_000;

/// The `net.` DNSKEY RRset of September 2021 (KSK with exponent 3) and its RRSIG by the KSK.
pub const NET_KSK_2021: &str = "net. 86400 IN DNSKEY 257 3 8 ( \
    AQOYBnzqWXIEj6mlgXg4LWC0HP2n8eK8XqgHlmJ/69iuIHsa1TrHDG6TcOra/pyeGKwH0nKZhTmXSuUFGh9BCNiwVDuyyb6OBGy2Nte9Kr8NwWg4q+zhSoOf4D+gC9dEzg0yFdwT0DKEvmNPt0K4jbQDS4Yimb+uPKuF6yieWWrPYYCrv8C9KC8JMze2uT6NuWBfsl2fDUoV4l65qMww06D7n+p7RbdwWkAZ0fA63mXVXBZF6kpDtsYD7SUB9jhhfLQE/r85bvg3FaSs5Wi2BaqN06SzGWI1DHu7axthIOeHwg00zxlhTpoYCH0ldoQz+S65zWYi/fRJiyLSBb6JZOvn )";
pub const NET_ZSK_2021: &str = "net. 86400 IN DNSKEY 256 3 8 ( \
    AQPW36Zs2vsDFGgdXBlg8RXSr1pSJ12NK+u9YcWfOr85we2z5A04SKQlIfyTK37dItGFcldtF7oYwPg11T3R33viKV6PyASvnuRl8QKiLk5FfGUDt1sQJv3S/9wT22Le1vnoE/6XFRyeb8kmJgz0oQB1VAO9b0l6Vm8KAVeOGJ+Qsjaq0O0aVzwPvmPtYm/i3qoAhkaMBUpg6RrF5NKhRyG3 )";
pub const NET_DNSKEY_RRSIG_2021: &str = "net. 86400 IN RRSIG DNSKEY 8 1 86400 20210921162830 20210906162330 35886 net. ( \
    j1s1IPMoZd0mbmelNVvcbYNe2tFCdLsLpNCnQ8xW6d91ujwPZ2yDlc3lU3hb+Jq3sPoj+5lVgB7fZzXQUQTPFWLF7zvW49da8pWuqzxFtg6EjXRBIWH5rpEhOcr+y3QolJcPOTx+/utCqt2tBKUUy3LfM6WgvopdSGaryWdwFJPW7qKHjyyLYxIGx5AEuLfzsA5XZf8CmpUheSRH99GRZoIB+sQzHuelWGMQ5A42DPvOVZFmTpIwiT2QaIpid4nJ7jNfahfwFrCoS+hvqjK9vktc5/6E/Mt7DwCQDaPt5cqDfYltUitQy+YA5YP5sOhINChYadZe+2N80OA+RKz0mA== )";
/// A moment inside that signature's validity (2021-09-10).
pub const NET_2021_NOW: u32 = 1_631_250_000;

/// A moment inside the RFC 6605 signatures' validity (2010-08-28).
pub const RFC6605_NOW: u32 = 1_283_000_000;
/// A moment inside the RFC 5702 signatures' validity (2001-09-09).
pub const RFC5702_NOW: u32 = 1_000_000_000;
/// A moment inside the RFC 8080 signature's validity (2015-08-10).
pub const RFC8080_NOW: u32 = 1_439_200_000;
