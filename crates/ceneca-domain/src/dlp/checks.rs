//! The proofs that turn a pattern match into a finding: check digits and the number
//! ranges issuers actually use.

/// The digits of `text`, skipping the separators a card or an IBAN is written with.
fn digits(text: &str) -> Vec<u8> {
    text.bytes()
        .filter(u8::is_ascii_digit)
        .map(|b| b - b'0')
        .collect()
}

/// A payment card number: 13–19 digits passing the Luhn check, with a prefix of one of
/// the card schemes in use (Visa, Mastercard, American Express, Discover, JCB, Diners
/// Club, UnionPay, Maestro). Written in one run or in groups of the same separator.
pub(super) fn is_payment_card(text: &str) -> bool {
    let separators: Vec<u8> = text.bytes().filter(|b| !b.is_ascii_digit()).collect();
    if separators.windows(2).any(|w| w[0] != w[1]) {
        return false;
    }
    let d = digits(text);
    if !(13..=19).contains(&d.len()) || !luhn(&d) {
        return false;
    }
    let prefix = |n: usize| d[..n].iter().fold(0u32, |acc, x| acc * 10 + u32::from(*x));
    let len = d.len();
    match d[0] {
        4 => matches!(len, 13 | 16 | 19),
        // Mastercard, then Maestro.
        5 => ((51..=55).contains(&prefix(2)) && len == 16) || matches!(prefix(2), 50 | 56..=58),
        2 => (2221..=2720).contains(&prefix(4)) && len == 16,
        // American Express, JCB, Diners Club.
        3 => {
            (matches!(prefix(2), 34 | 37) && len == 15)
                || ((3528..=3589).contains(&prefix(4)) && len >= 16)
                || (matches!(prefix(2), 36 | 38 | 39) && len >= 14)
                || ((300..=305).contains(&prefix(3)) && len >= 14)
        }
        6 => {
            prefix(4) == 6011
                || prefix(2) == 65
                || (644..=649).contains(&prefix(3))
                || (prefix(2) == 62 && len >= 16)
                || matches!(prefix(2), 63 | 67)
        }
        _ => false,
    }
}

/// The Luhn (mod 10) check of a card number.
fn luhn(digits: &[u8]) -> bool {
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &d)| {
            let d = u32::from(d);
            if i % 2 == 1 {
                let doubled = d * 2;
                if doubled > 9 { doubled - 9 } else { doubled }
            } else {
                d
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

/// The length of an IBAN in each country that issues them (ISO 13616 registry).
const IBAN_LENGTHS: &[(&str, usize)] = &[
    ("AD", 24),
    ("AE", 23),
    ("AL", 28),
    ("AT", 20),
    ("AZ", 28),
    ("BA", 20),
    ("BE", 16),
    ("BG", 22),
    ("BH", 22),
    ("BR", 29),
    ("BY", 28),
    ("CH", 21),
    ("CR", 22),
    ("CY", 28),
    ("CZ", 24),
    ("DE", 22),
    ("DK", 18),
    ("DO", 28),
    ("EE", 20),
    ("EG", 29),
    ("ES", 24),
    ("FI", 18),
    ("FO", 18),
    ("FR", 27),
    ("GB", 22),
    ("GE", 22),
    ("GI", 23),
    ("GL", 18),
    ("GR", 27),
    ("GT", 28),
    ("HR", 21),
    ("HU", 28),
    ("IE", 22),
    ("IL", 23),
    ("IQ", 23),
    ("IS", 26),
    ("IT", 27),
    ("JO", 30),
    ("KW", 30),
    ("KZ", 20),
    ("LB", 28),
    ("LC", 32),
    ("LI", 21),
    ("LT", 20),
    ("LU", 20),
    ("LV", 21),
    ("MC", 27),
    ("MD", 24),
    ("ME", 22),
    ("MK", 19),
    ("MR", 27),
    ("MT", 31),
    ("MU", 30),
    ("NL", 18),
    ("NO", 15),
    ("PK", 24),
    ("PL", 28),
    ("PS", 29),
    ("PT", 25),
    ("QA", 29),
    ("RO", 24),
    ("RS", 22),
    ("SA", 24),
    ("SC", 31),
    ("SE", 24),
    ("SI", 19),
    ("SK", 24),
    ("SM", 27),
    ("ST", 25),
    ("SV", 28),
    ("TL", 23),
    ("TN", 24),
    ("TR", 26),
    ("UA", 29),
    ("VA", 22),
    ("VG", 24),
    ("XK", 20),
];

/// An IBAN: a registered country, that country's length, and the ISO 7064 mod-97-10
/// check (the number read with its first four characters moved to the end, letters as
/// 10–35, leaves 1).
///
/// Read in any case (`gb82 west 1234 5698 7654 32`), upper-cased for the check; written
/// in one run, its letters are all of one case (a random identifier mixes them).
pub(super) fn is_iban(text: &str) -> bool {
    let mixed = text.bytes().any(|b| b.is_ascii_lowercase())
        && text.bytes().any(|b| b.is_ascii_uppercase());
    if mixed && !text.contains(' ') {
        return false;
    }
    let compact: Vec<u8> = text
        .bytes()
        .filter(|b| *b != b' ')
        .map(|b| b.to_ascii_uppercase())
        .collect();
    let Ok(country) = std::str::from_utf8(&compact[..2.min(compact.len())]) else {
        return false;
    };
    let Some(&(_, length)) = IBAN_LENGTHS.iter().find(|(c, _)| *c == country) else {
        return false;
    };
    if compact.len() != length {
        return false;
    }
    let mut remainder: u32 = 0;
    for &b in compact[4..].iter().chain(&compact[..4]) {
        let value = match b {
            b'0'..=b'9' => u32::from(b - b'0'),
            b'A'..=b'Z' => u32::from(b - b'A') + 10,
            _ => return false,
        };
        remainder = if value < 10 {
            (remainder * 10 + value) % 97
        } else {
            (remainder * 100 + value) % 97
        };
    }
    remainder == 1
}

/// A US social security number written `AAA-GG-SSSS` or `AAA GG SSSS`, outside the
/// ranges never issued (area 000, 666 and 900–999, group 00, serial 0000). Nine bare
/// digits are not looked for: they are too often something else (the spaced form has
/// conditions of its own, see `ssn_stands_alone` in `detectors.rs`).
pub(super) fn is_us_ssn(text: &str) -> bool {
    let d = digits(text);
    if d.len() != 9 {
        return false;
    }
    let area = u32::from(d[0]) * 100 + u32::from(d[1]) * 10 + u32::from(d[2]);
    let group = d[3] * 10 + d[4];
    let serial = d[5..].iter().all(|x| *x == 0);
    area != 0 && area != 666 && area < 900 && group != 0 && !serial
}

/// A UK national insurance number: the prefixes HMRC never allocates are refused (the
/// pattern already excludes D, F, I, Q, U, V and a second letter O).
pub(super) fn is_uk_nino(text: &str) -> bool {
    let prefix: String = text.chars().take(2).collect();
    !matches!(
        prefix.as_str(),
        "BG" | "GB" | "NK" | "KN" | "TN" | "NT" | "ZZ"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cards_need_the_luhn_check_and_an_issuer() {
        for card in [
            "4111111111111111",
            "4111 1111 1111 1111",
            "4111-1111-1111-1111",
            "5500005555555559",
            "378282246310005",
            "6011111111111117",
            "3530111333300000",
            "2223003122003222",
        ] {
            assert!(is_payment_card(card), "{card}");
        }
        for not_card in [
            "4111111111111112",    // Luhn fails
            "1234567812345670",    // passes Luhn, no issuer starts with 1
            "4111 1111-1111 1111", // mixed separators
            "9999999999999995",
        ] {
            assert!(!is_payment_card(not_card), "{not_card}");
        }
    }

    #[test]
    fn ibans_need_their_country_length_and_check_digits() {
        assert!(is_iban("DE89370400440532013000"));
        assert!(is_iban("GB82 WEST 1234 5698 7654 32"));
        assert!(is_iban("FR1420041010050500013M02606"));
        assert!(!is_iban("DE89370400440532013001"));
        assert!(!is_iban("DE8937040044053201300"));
        assert!(!is_iban("XX89370400440532013000"));
    }

    #[test]
    fn ssns_outside_issued_ranges_are_not_ssns() {
        assert!(is_us_ssn("123-45-6789"));
        assert!(!is_us_ssn("000-45-6789"));
        assert!(!is_us_ssn("666-45-6789"));
        assert!(!is_us_ssn("901-45-6789"));
        assert!(!is_us_ssn("123-00-6789"));
        assert!(!is_us_ssn("123-45-0000"));
    }
}
