//! Numeric values: MongoDB's four number types, exact cross-type comparison
//! and arithmetic with MongoDB's widening rules (int32 → int64 → double).
//!
//! Decimal128 addition, subtraction and multiplication are exact (rounded to
//! 34 digits); division and other operations go through `f64`. Decimal
//! results are normalized (`1.10 + 1.10` gives `2.2`, where MongoDB keeps `2.20`).

use std::cmp::Ordering;
use std::str::FromStr;

use bson::{Bson, Decimal128};

/// One of MongoDB's numeric BSON values.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Num {
    /// `int`.
    Int32(i32),
    /// `long`.
    Int64(i64),
    /// `double`.
    Double(f64),
    /// `decimal`.
    Decimal(Decimal128),
}

impl Num {
    /// The number held by `v`, if `v` is numeric.
    pub(crate) fn from_bson(v: &Bson) -> Option<Num> {
        match v {
            Bson::Int32(i) => Some(Num::Int32(*i)),
            Bson::Int64(i) => Some(Num::Int64(*i)),
            Bson::Double(d) => Some(Num::Double(*d)),
            Bson::Decimal128(d) => Some(Num::Decimal(*d)),
            _ => None,
        }
    }

    /// The number as a BSON value of the same type.
    pub(crate) fn to_bson(self) -> Bson {
        match self {
            Num::Int32(i) => Bson::Int32(i),
            Num::Int64(i) => Bson::Int64(i),
            Num::Double(d) => Bson::Double(d),
            Num::Decimal(d) => Bson::Decimal128(d),
        }
    }

    /// The value as a double (Decimal128 through its string form).
    pub(crate) fn to_f64(self) -> f64 {
        match self {
            Num::Int32(i) => f64::from(i),
            Num::Int64(i) => i as f64,
            Num::Double(d) => d,
            Num::Decimal(d) => decimal_to_f64(&d),
        }
    }

    /// The value as an `i64` when it is integral and in range.
    pub(crate) fn to_i64_exact(self) -> Option<i64> {
        match self {
            Num::Int32(i) => Some(i64::from(i)),
            Num::Int64(i) => Some(i),
            other => {
                let d = other.to_f64();
                if d.fract() == 0.0
                    && (-9.223_372_036_854_776e18..9.223_372_036_854_776e18).contains(&d)
                {
                    Some(d as i64)
                } else {
                    None
                }
            }
        }
    }

    /// The value truncated toward zero to an `i64` (saturating; NaN gives `None`).
    pub(crate) fn to_i64_trunc(self) -> Option<i64> {
        match self {
            Num::Int32(i) => Some(i64::from(i)),
            Num::Int64(i) => Some(i),
            other => {
                let d = other.to_f64();
                if d.is_nan() {
                    None
                } else {
                    Some(d.trunc() as i64)
                }
            }
        }
    }

    /// Whether the value is a NaN.
    pub(crate) fn is_nan(self) -> bool {
        match self {
            Num::Double(d) => d.is_nan(),
            Num::Decimal(d) => matches!(DecVal::from_decimal(&d), DecVal::NaN),
            _ => false,
        }
    }

    /// Whether the value is zero.
    pub(crate) fn is_zero(self) -> bool {
        match self {
            Num::Int32(i) => i == 0,
            Num::Int64(i) => i == 0,
            Num::Double(d) => d == 0.0,
            Num::Decimal(d) => DecVal::from_decimal(&d).is_zero(),
        }
    }

    fn rank(self) -> u8 {
        match self {
            Num::Int32(_) => 0,
            Num::Int64(_) => 1,
            Num::Double(_) => 2,
            Num::Decimal(_) => 3,
        }
    }
}

/// The double value of a Decimal128.
pub(crate) fn decimal_to_f64(d: &Decimal128) -> f64 {
    let s = d.to_string();
    match s.as_str() {
        "NaN" => f64::NAN,
        "Infinity" => f64::INFINITY,
        "-Infinity" => f64::NEG_INFINITY,
        _ => s.parse::<f64>().unwrap_or(f64::NAN),
    }
}

/// A Decimal128 holding `d` (through its shortest round-trip form).
pub(crate) fn f64_to_decimal(d: f64) -> Decimal128 {
    let s = if d.is_nan() {
        "NaN".to_string()
    } else if d.is_infinite() {
        if d > 0.0 { "Infinity" } else { "-Infinity" }.to_string()
    } else {
        format!("{d:e}")
    };
    Decimal128::from_str(&s).unwrap_or_else(|_| Decimal128::from_bytes([0; 16]))
}

/// An exact decimal value used to compare and key numbers of every type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum DecVal {
    /// Not a number (lowest of all numbers).
    NaN,
    /// Infinity; `true` for negative infinity.
    Inf(bool),
    /// `(-1)^neg × digits × 10^exp`, digits without leading or trailing zeros
    /// (zero: no digits, `neg == false`).
    Finite {
        /// Negative sign.
        neg: bool,
        /// Decimal digits, most significant first, each 0..=9.
        digits: Vec<u8>,
        /// Power of ten applied to the digits.
        exp: i64,
    },
}

impl DecVal {
    /// Parses a decimal string such as `-1.25E+3`, `NaN` or `Infinity`.
    pub(crate) fn parse(s: &str) -> Option<DecVal> {
        let (neg, body) = match s.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, s.strip_prefix('+').unwrap_or(s)),
        };
        match body.to_ascii_lowercase().as_str() {
            "nan" => return Some(DecVal::NaN),
            "infinity" | "inf" => return Some(DecVal::Inf(neg)),
            _ => {}
        }
        let (mantissa, exp_part) = match body.find(['e', 'E']) {
            Some(i) => (&body[..i], body[i + 1..].parse::<i64>().ok()?),
            None => (body, 0),
        };
        let (int_part, frac_part) = match mantissa.split_once('.') {
            Some((a, b)) => (a, b),
            None => (mantissa, ""),
        };
        let mut digits = Vec::with_capacity(int_part.len() + frac_part.len());
        for c in int_part.bytes().chain(frac_part.bytes()) {
            if !c.is_ascii_digit() {
                return None;
            }
            digits.push(c - b'0');
        }
        Some(Self::normalize(
            neg,
            digits,
            exp_part - frac_part.len() as i64,
        ))
    }

    fn normalize(neg: bool, mut digits: Vec<u8>, mut exp: i64) -> DecVal {
        let lead = digits.iter().take_while(|d| **d == 0).count();
        digits.drain(..lead);
        while digits.last() == Some(&0) {
            digits.pop();
            exp += 1;
        }
        if digits.is_empty() {
            return DecVal::Finite {
                neg: false,
                digits,
                exp: 0,
            };
        }
        DecVal::Finite { neg, digits, exp }
    }

    /// The exact value of an integer.
    pub(crate) fn from_i64(i: i64) -> DecVal {
        let neg = i < 0;
        let digits = i
            .unsigned_abs()
            .to_string()
            .bytes()
            .map(|b| b - b'0')
            .collect();
        Self::normalize(neg, digits, 0)
    }

    /// The value of a double: exact for integral values within the `i64`
    /// range, otherwise its shortest round-trip decimal form.
    pub(crate) fn from_f64(d: f64) -> DecVal {
        if d.is_nan() {
            return DecVal::NaN;
        }
        if d.is_infinite() {
            return DecVal::Inf(d < 0.0);
        }
        if d.fract() == 0.0 && d.abs() < 9.223_372_036_854_776e18 {
            return Self::from_i64(d as i64);
        }
        Self::parse(&format!("{d:e}")).unwrap_or(DecVal::NaN)
    }

    /// The value of a Decimal128.
    pub(crate) fn from_decimal(d: &Decimal128) -> DecVal {
        Self::parse(&d.to_string()).unwrap_or(DecVal::NaN)
    }

    /// The value of any number.
    pub(crate) fn from_num(n: Num) -> DecVal {
        match n {
            Num::Int32(i) => Self::from_i64(i64::from(i)),
            Num::Int64(i) => Self::from_i64(i),
            Num::Double(d) => Self::from_f64(d),
            Num::Decimal(d) => Self::from_decimal(&d),
        }
    }

    /// Whether this is zero.
    pub(crate) fn is_zero(&self) -> bool {
        matches!(self, DecVal::Finite { digits, .. } if digits.is_empty())
    }

    /// Total order: NaN lowest, then -∞, finite values, +∞.
    pub(crate) fn cmp_total(&self, other: &DecVal) -> Ordering {
        use DecVal::*;
        match (self, other) {
            (NaN, NaN) => Ordering::Equal,
            (NaN, _) => Ordering::Less,
            (_, NaN) => Ordering::Greater,
            (Inf(a), Inf(b)) => b.cmp(a),
            (Inf(a), _) => {
                if *a {
                    Ordering::Less
                } else {
                    Ordering::Greater
                }
            }
            (_, Inf(b)) => {
                if *b {
                    Ordering::Greater
                } else {
                    Ordering::Less
                }
            }
            (
                Finite {
                    neg: an,
                    digits: ad,
                    exp: ae,
                },
                Finite {
                    neg: bn,
                    digits: bd,
                    exp: be,
                },
            ) => {
                let sign = |neg: bool, d: &Vec<u8>| {
                    if d.is_empty() {
                        0
                    } else if neg {
                        -1
                    } else {
                        1
                    }
                };
                let (sa, sb) = (sign(*an, ad), sign(*bn, bd));
                if sa != sb {
                    return sa.cmp(&sb);
                }
                if sa == 0 {
                    return Ordering::Equal;
                }
                let mag = {
                    let adj_a = ad.len() as i64 + ae;
                    let adj_b = bd.len() as i64 + be;
                    if adj_a != adj_b {
                        adj_a.cmp(&adj_b)
                    } else {
                        ad.cmp(bd)
                    }
                };
                if sa < 0 {
                    mag.reverse()
                } else {
                    mag
                }
            }
        }
    }

    /// The value with its sign flipped.
    pub(crate) fn negate(&self) -> DecVal {
        match self {
            DecVal::NaN => DecVal::NaN,
            DecVal::Inf(neg) => DecVal::Inf(!neg),
            DecVal::Finite { neg, digits, exp } => Self::normalize(!neg, digits.clone(), *exp),
        }
    }

    /// Exact sum.
    pub(crate) fn add(&self, other: &DecVal) -> DecVal {
        use DecVal::*;
        match (self, other) {
            (NaN, _) | (_, NaN) => NaN,
            (Inf(a), Inf(b)) if a != b => NaN,
            (Inf(a), _) | (_, Inf(a)) => Inf(*a),
            (
                Finite {
                    neg: an,
                    digits: ad,
                    exp: ae,
                },
                Finite {
                    neg: bn,
                    digits: bd,
                    exp: be,
                },
            ) => {
                if ad.is_empty() {
                    return other.clone();
                }
                if bd.is_empty() {
                    return self.clone();
                }
                // Bring both to the smaller exponent (bounded: Decimal128 exponents span ~12300).
                let e = (*ae).min(*be);
                let shift = |d: &Vec<u8>, x: i64| {
                    let mut v = d.clone();
                    v.extend(std::iter::repeat_n(
                        0u8,
                        usize::try_from(x - e).unwrap_or(0).min(20_000),
                    ));
                    v
                };
                let (x, y) = (shift(ad, *ae), shift(bd, *be));
                if an == bn {
                    return Self::normalize(*an, add_mag(&x, &y), e);
                }
                match cmp_mag(&x, &y) {
                    Ordering::Equal => Self::normalize(false, Vec::new(), 0),
                    Ordering::Greater => Self::normalize(*an, sub_mag(&x, &y), e),
                    Ordering::Less => Self::normalize(*bn, sub_mag(&y, &x), e),
                }
            }
        }
    }

    /// Exact product.
    pub(crate) fn mul(&self, other: &DecVal) -> DecVal {
        use DecVal::*;
        match (self, other) {
            (NaN, _) | (_, NaN) => NaN,
            (Inf(_), x) | (x, Inf(_)) if x.is_zero() => NaN,
            (Inf(a), x) | (x, Inf(a)) => Inf(*a != x.is_negative()),
            (
                Finite {
                    neg: an,
                    digits: ad,
                    exp: ae,
                },
                Finite {
                    neg: bn,
                    digits: bd,
                    exp: be,
                },
            ) => {
                let mut out = vec![0u32; ad.len() + bd.len()];
                for (i, x) in ad.iter().rev().enumerate() {
                    for (j, y) in bd.iter().rev().enumerate() {
                        out[i + j] += u32::from(*x) * u32::from(*y);
                    }
                }
                let mut carry = 0u32;
                let mut digits = Vec::with_capacity(out.len());
                for v in out {
                    let t = v + carry;
                    digits.push((t % 10) as u8);
                    carry = t / 10;
                }
                while carry > 0 {
                    digits.push((carry % 10) as u8);
                    carry /= 10;
                }
                digits.reverse();
                Self::normalize(an != bn, digits, ae + be)
            }
        }
    }

    fn is_negative(&self) -> bool {
        match self {
            DecVal::Inf(neg) => *neg,
            DecVal::Finite { neg, .. } => *neg,
            DecVal::NaN => false,
        }
    }

    /// The nearest Decimal128 (34 significant digits), if in range.
    pub(crate) fn to_decimal128(&self) -> Option<Decimal128> {
        let s = match self {
            DecVal::NaN => "NaN".to_string(),
            DecVal::Inf(neg) => if *neg { "-Infinity" } else { "Infinity" }.to_string(),
            DecVal::Finite { digits, .. } if digits.is_empty() => "0".to_string(),
            DecVal::Finite { neg, digits, exp } => {
                let body: String = digits.iter().map(|d| char::from(b'0' + d)).collect();
                format!("{}{}E{}", if *neg { "-" } else { "" }, body, exp)
            }
        };
        Decimal128::from_str(&s).ok()
    }

    /// The Decimal128 of this exact value written with exponent `exp` when
    /// that needs no rounding and at most 34 digits (`negative_zero` gives a
    /// zero its sign); `None` otherwise.
    pub(crate) fn to_decimal128_at(&self, exp: i64, negative_zero: bool) -> Option<Decimal128> {
        let DecVal::Finite {
            neg,
            digits,
            exp: own,
        } = self
        else {
            return None;
        };
        if digits.is_empty() {
            let sign = if negative_zero { "-" } else { "" };
            return Decimal128::from_str(&format!("{sign}0E{exp}")).ok();
        }
        let pad = usize::try_from(own - exp).ok()?;
        if digits.len() + pad > 34 {
            return None;
        }
        let body: String = digits
            .iter()
            .map(|d| char::from(b'0' + d))
            .chain(std::iter::repeat_n('0', pad))
            .collect();
        let sign = if *neg { "-" } else { "" };
        Decimal128::from_str(&format!("{sign}{body}E{exp}")).ok()
    }

    /// Appends what `DecVal::from_i64(i).encode(out)` appends, without
    /// building the digit vector (the `_id` index encodes an integer on
    /// every lookup and insert).
    pub(crate) fn encode_integer(i: i64, out: &mut Vec<u8>) {
        let mut magnitude = i.unsigned_abs();
        let mut exp: i64 = 0;
        // Digits least significant first; u64 has at most 20.
        let mut digits = [0u8; 20];
        let mut len = 0;
        if magnitude != 0 {
            while magnitude.is_multiple_of(10) {
                magnitude /= 10;
                exp += 1;
            }
            while magnitude != 0 {
                digits[len] = (magnitude % 10) as u8;
                magnitude /= 10;
                len += 1;
            }
        }
        out.push(2);
        out.push(u8::from(i < 0));
        out.extend_from_slice(&exp.to_be_bytes());
        out.extend_from_slice(&(len as u32).to_be_bytes());
        out.extend(digits[..len].iter().rev());
    }

    /// Appends an injective byte encoding of the value to `out`.
    pub(crate) fn encode(&self, out: &mut Vec<u8>) {
        match self {
            DecVal::NaN => out.push(0),
            DecVal::Inf(neg) => out.extend_from_slice(&[1, u8::from(*neg)]),
            DecVal::Finite { neg, digits, exp } => {
                out.push(2);
                out.push(u8::from(*neg));
                out.extend_from_slice(&exp.to_be_bytes());
                out.extend_from_slice(&(digits.len() as u32).to_be_bytes());
                out.extend_from_slice(digits);
            }
        }
    }
}

fn cmp_mag(a: &[u8], b: &[u8]) -> Ordering {
    let a = &a[a.iter().take_while(|d| **d == 0).count()..];
    let b = &b[b.iter().take_while(|d| **d == 0).count()..];
    a.len().cmp(&b.len()).then_with(|| a.cmp(b))
}

fn add_mag(a: &[u8], b: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(a.len().max(b.len()) + 1);
    let (mut i, mut j, mut carry) = (a.len(), b.len(), 0u8);
    while i > 0 || j > 0 || carry > 0 {
        let x = if i > 0 {
            i -= 1;
            a[i]
        } else {
            0
        };
        let y = if j > 0 {
            j -= 1;
            b[j]
        } else {
            0
        };
        let t = x + y + carry;
        out.push(t % 10);
        carry = t / 10;
    }
    out.reverse();
    out
}

/// `a - b` for magnitudes with `a >= b`.
fn sub_mag(a: &[u8], b: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(a.len());
    let (mut i, mut j, mut borrow) = (a.len(), b.len(), 0i8);
    while i > 0 {
        i -= 1;
        let y = if j > 0 {
            j -= 1;
            b[j] as i8
        } else {
            0
        };
        let mut t = a[i] as i8 - y - borrow;
        if t < 0 {
            t += 10;
            borrow = 1;
        } else {
            borrow = 0;
        }
        out.push(t as u8);
    }
    out.reverse();
    out
}

/// Compares two numbers by value across types (NaN lowest, -0 equals 0).
pub(crate) fn compare_nums(a: Num, b: Num) -> Ordering {
    match (a, b) {
        (Num::Decimal(_), _) | (_, Num::Decimal(_)) => {
            DecVal::from_num(a).cmp_total(&DecVal::from_num(b))
        }
        (Num::Double(x), Num::Double(y)) => cmp_f64(x, y),
        (Num::Double(x), other) => cmp_f64_i64(x, other.to_i64_exact().unwrap_or(0)),
        (other, Num::Double(y)) => cmp_f64_i64(y, other.to_i64_exact().unwrap_or(0)).reverse(),
        (x, y) => x
            .to_i64_exact()
            .unwrap_or(0)
            .cmp(&y.to_i64_exact().unwrap_or(0)),
    }
}

fn cmp_f64(x: f64, y: f64) -> Ordering {
    match (x.is_nan(), y.is_nan()) {
        (true, true) => Ordering::Equal,
        (true, false) => Ordering::Less,
        (false, true) => Ordering::Greater,
        _ => x.partial_cmp(&y).unwrap_or(Ordering::Equal),
    }
}

/// Exact comparison of a double with a 64-bit integer.
fn cmp_f64_i64(x: f64, i: i64) -> Ordering {
    if x.is_nan() {
        return Ordering::Less;
    }
    if x >= 9.223_372_036_854_776e18 {
        return Ordering::Greater;
    }
    if x < -9.223_372_036_854_776e18 {
        return Ordering::Less;
    }
    let t = x.trunc();
    let ti = t as i64;
    match ti.cmp(&i) {
        Ordering::Equal => cmp_f64(x - t, 0.0),
        o => o,
    }
}

/// The exponent a Decimal128 is stored with (`1.0` → -1, `1E+3` → 3);
/// `None` for NaN and the infinities.
pub(crate) fn decimal_exponent(d: &Decimal128) -> Option<i64> {
    let b = d.bytes();
    let mut high_bytes = [0u8; 8];
    high_bytes.copy_from_slice(&b[8..16]);
    let high = u64::from_le_bytes(high_bytes);
    if (high >> 58) & 0x1f >= 0x1e {
        return None;
    }
    let biased = if (high >> 61) & 0b11 == 0b11 {
        (high >> 47) & 0x3fff
    } else {
        (high >> 49) & 0x3fff
    };
    Some(biased as i64 - 6176)
}

/// An operand of Decimal128 arithmetic: its value and its exponent (quantum).
/// Integers have exponent 0 and decimals their stored one; a double is first
/// converted as MongoDB converts it, to 15 significant digits (1.0 becomes
/// 1.00000000000000, exponent -14).
fn decimal_operand(n: Num) -> (DecVal, Option<i64>) {
    match n {
        Num::Int32(i) => (DecVal::from_i64(i64::from(i)), Some(0)),
        Num::Int64(i) => (DecVal::from_i64(i), Some(0)),
        Num::Decimal(d) => (DecVal::from_decimal(&d), decimal_exponent(&d)),
        Num::Double(d) if !d.is_finite() => (DecVal::from_f64(d), None),
        Num::Double(0.0) => (DecVal::from_i64(0), Some(0)),
        Num::Double(d) => {
            let text = format!("{d:.14e}");
            let exp = text
                .split_once('e')
                .and_then(|(_, e)| e.parse::<i64>().ok())
                .map(|e| e - 14);
            (DecVal::parse(&text).unwrap_or(DecVal::NaN), exp)
        }
    }
}

/// Whether the number carries a minus sign (including -0).
fn sign_bit(n: Num) -> bool {
    match n {
        Num::Int32(i) => i < 0,
        Num::Int64(i) => i < 0,
        Num::Double(d) => d.is_sign_negative(),
        Num::Decimal(d) => d.bytes()[15] & 0x80 != 0,
    }
}

fn wider(a: Num, b: Num) -> u8 {
    a.rank().max(b.rank())
}

fn from_i64_at_least(v: i64, rank: u8) -> Num {
    if rank == 0 {
        if let Ok(i) = i32::try_from(v) {
            return Num::Int32(i);
        }
    }
    Num::Int64(v)
}

fn as_i64(n: Num) -> i64 {
    match n {
        Num::Int32(i) => i64::from(i),
        Num::Int64(i) => i,
        other => other.to_f64() as i64,
    }
}

fn float_result(v: f64, rank: u8) -> Num {
    if rank == 3 {
        Num::Decimal(f64_to_decimal(v))
    } else {
        Num::Double(v)
    }
}

/// Which way integer overflow is handled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Overflow {
    /// int64 overflow becomes a double (aggregation expressions, `$sum`).
    ToDouble,
    /// int64 overflow is an error (`$inc`, `$mul`).
    Fail,
}

#[derive(Clone, Copy)]
enum DecOp {
    Add,
    Sub,
    Mul,
}

fn int_op(
    a: Num,
    b: Num,
    overflow: Overflow,
    op: fn(i64, i64) -> Option<i64>,
    fop: fn(f64, f64) -> f64,
    dop: DecOp,
) -> Option<Num> {
    let rank = wider(a, b);
    if rank == 3 {
        let ((x, qa), (y, qb)) = (decimal_operand(a), decimal_operand(b));
        let exact = match dop {
            DecOp::Add => x.add(&y),
            DecOp::Sub => x.add(&y.negate()),
            DecOp::Mul => x.mul(&y),
        };
        // IEEE 754-2008 keeps the quantum: a sum is exact at the smaller
        // exponent of the operands, a product at the sum of the exponents
        // (0.10 + 0 = 0.10, 2.5 × 0 = 0.0), as MongoDB's Decimal128 does.
        let ideal = match (qa, qb) {
            (Some(p), Some(q)) => Some(match dop {
                DecOp::Add | DecOp::Sub => p.min(q),
                DecOp::Mul => p + q,
            }),
            _ => None,
        };
        let negative_zero = match dop {
            DecOp::Add => sign_bit(a) && sign_bit(b),
            DecOp::Sub => sign_bit(a) && !sign_bit(b),
            DecOp::Mul => sign_bit(a) != sign_bit(b),
        };
        if let Some(d) = ideal.and_then(|e| exact.to_decimal128_at(e, negative_zero)) {
            return Some(Num::Decimal(d));
        }
        if let Some(d) = exact.to_decimal128() {
            return Some(Num::Decimal(d));
        }
    }
    if rank <= 1 {
        let (x, y) = (as_i64(a), as_i64(b));
        return match op(x, y) {
            Some(v) => Some(from_i64_at_least(v, rank)),
            None => match overflow {
                Overflow::ToDouble => Some(Num::Double(fop(x as f64, y as f64))),
                Overflow::Fail => None,
            },
        };
    }
    Some(float_result(fop(a.to_f64(), b.to_f64()), rank))
}

/// `a + b` with MongoDB's widening; `None` only for an int64 overflow under [`Overflow::Fail`].
pub(crate) fn add(a: Num, b: Num, overflow: Overflow) -> Option<Num> {
    int_op(a, b, overflow, i64::checked_add, |x, y| x + y, DecOp::Add)
}

/// `a - b` with MongoDB's widening.
pub(crate) fn sub(a: Num, b: Num, overflow: Overflow) -> Option<Num> {
    int_op(a, b, overflow, i64::checked_sub, |x, y| x - y, DecOp::Sub)
}

/// `a × b` with MongoDB's widening.
pub(crate) fn mul(a: Num, b: Num, overflow: Overflow) -> Option<Num> {
    int_op(a, b, overflow, i64::checked_mul, |x, y| x * y, DecOp::Mul)
}

/// `a / b` as `$divide` computes it: a double (or a decimal if either is one).
/// The caller rejects a zero divisor.
pub(crate) fn div(a: Num, b: Num) -> Num {
    float_result(
        a.to_f64() / b.to_f64(),
        if wider(a, b) == 3 { 3 } else { 2 },
    )
}

/// `a mod b` as `$mod` computes it (sign of the dividend). The caller rejects a zero divisor.
pub(crate) fn rem(a: Num, b: Num) -> Num {
    let rank = wider(a, b);
    if rank <= 1 {
        let (x, y) = (as_i64(a), as_i64(b));
        return from_i64_at_least(x.checked_rem(y).unwrap_or(0), rank);
    }
    float_result(a.to_f64() % b.to_f64(), rank)
}

/// `|a|`, widening `int32::MIN` to int64 and `int64::MIN` to double.
pub(crate) fn abs(a: Num) -> Num {
    match a {
        Num::Int32(i) => i
            .checked_abs()
            .map(Num::Int32)
            .unwrap_or(Num::Int64(-(i64::from(i)))),
        Num::Int64(i) => i
            .checked_abs()
            .map(Num::Int64)
            .unwrap_or(Num::Double((i as f64).abs())),
        Num::Double(d) => Num::Double(d.abs()),
        Num::Decimal(d) => {
            let s = d.to_string();
            Num::Decimal(Decimal128::from_str(s.trim_start_matches('-')).unwrap_or(d))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_encode_as_their_decimal_value_does() {
        let mut values = vec![0, 1, -1, 7, 10, -10, 100, 120, 1_000_000, 123_456_789];
        values.extend([i64::MAX, i64::MIN, i64::MAX - 1, i64::MIN + 1]);
        values.extend([i64::from(i32::MAX), i64::from(i32::MIN)]);
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        for _ in 0..2_000 {
            x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
            values.push(x as i64 >> (x % 60));
        }
        for i in values {
            let (mut fast, mut slow) = (Vec::new(), Vec::new());
            DecVal::encode_integer(i, &mut fast);
            DecVal::from_i64(i).encode(&mut slow);
            assert_eq!(fast, slow, "{i}");
        }
    }

    #[test]
    fn compares_across_types() {
        let d = |s: &str| Num::Decimal(Decimal128::from_str(s).unwrap());
        let cases = [
            (Num::Int32(1), Num::Double(1.0), Ordering::Equal),
            (
                Num::Int64(i64::MAX),
                Num::Double(9.223_372_036_854_776e18),
                Ordering::Less,
            ),
            (Num::Int64(3), Num::Double(2.5), Ordering::Greater),
            (Num::Double(-0.0), Num::Int32(0), Ordering::Equal),
            (Num::Double(f64::NAN), Num::Int64(i64::MIN), Ordering::Less),
            (
                Num::Double(f64::NAN),
                Num::Double(f64::NAN),
                Ordering::Equal,
            ),
            (d("1.50"), Num::Double(1.5), Ordering::Equal),
            (d("1E+3"), Num::Int32(1000), Ordering::Equal),
            (d("-Infinity"), Num::Int64(i64::MIN), Ordering::Less),
            (d("NaN"), Num::Double(f64::NEG_INFINITY), Ordering::Less),
            (d("0.1"), Num::Double(0.1), Ordering::Equal),
            (d("-2.5"), d("-2.45"), Ordering::Less),
            (d("0"), d("-0.000"), Ordering::Equal),
        ];
        for (a, b, want) in cases {
            assert_eq!(compare_nums(a, b), want, "{a:?} vs {b:?}");
            assert_eq!(compare_nums(b, a), want.reverse(), "{b:?} vs {a:?}");
        }
    }

    /// Regression (differential tests): Decimal128 results keep IEEE 754's
    /// quantum instead of being normalised.
    #[test]
    fn decimal_results_keep_their_exponent() {
        let dec = |s: &str| Num::Decimal(Decimal128::from_str(s).unwrap());
        let text = |n: Option<Num>| match n {
            Some(Num::Decimal(d)) => d.to_string(),
            other => panic!("not a decimal: {other:?}"),
        };
        assert_eq!(
            text(add(Num::Int64(0), dec("0.10"), Overflow::Fail)),
            "0.10"
        );
        assert_eq!(text(add(dec("1.0"), dec("2.50"), Overflow::Fail)), "3.50");
        assert_eq!(text(mul(dec("2.5"), Num::Int32(0), Overflow::Fail)), "0.0");
        assert_eq!(text(mul(dec("1.0"), dec("1.5"), Overflow::Fail)), "1.50");
        assert_eq!(text(mul(dec("-1"), Num::Int32(0), Overflow::Fail)), "-0");
        assert_eq!(
            text(add(dec("1E+3"), Num::Int32(1), Overflow::Fail)),
            "1001"
        );
        assert_eq!(
            decimal_exponent(&Decimal128::from_str("1E+3").unwrap()),
            Some(3)
        );
        // A double joins decimal arithmetic with 15 significant digits.
        assert_eq!(
            text(add(Num::Double(1.0), dec("0.10"), Overflow::Fail)),
            "1.10000000000000"
        );
        assert_eq!(
            text(add(Num::Double(0.1), dec("0"), Overflow::Fail)),
            "0.100000000000000"
        );
    }

    #[test]
    fn widens() {
        let cases = [
            (
                Num::Int32(i32::MAX),
                Num::Int32(1),
                Num::Int64(i64::from(i32::MAX) + 1),
            ),
            (Num::Int32(1), Num::Int32(2), Num::Int32(3)),
            (
                Num::Int64(i64::MAX),
                Num::Int32(1),
                Num::Double(9.223_372_036_854_776e18),
            ),
            (Num::Int32(1), Num::Double(0.5), Num::Double(1.5)),
        ];
        for (a, b, want) in cases {
            assert_eq!(add(a, b, Overflow::ToDouble), Some(want));
        }
        assert_eq!(
            add(Num::Int64(i64::MAX), Num::Int32(1), Overflow::Fail),
            None
        );
        assert_eq!(abs(Num::Int32(i32::MIN)), Num::Int64(2_147_483_648));
        let d = |s: &str| Num::Decimal(Decimal128::from_str(s).unwrap());
        let dec_cases = [
            (add(d("0.1"), d("0.2"), Overflow::Fail), "0.3"),
            (sub(d("1"), d("1.5"), Overflow::Fail), "-0.5"),
            (mul(d("1.1"), Num::Int32(3), Overflow::Fail), "3.3"),
            (
                add(
                    d("9999999999999999999999999999999999"),
                    Num::Int32(1),
                    Overflow::Fail,
                ),
                "1.000000000000000000000000000000000E+34",
            ),
            (add(d("Infinity"), d("-Infinity"), Overflow::Fail), "NaN"),
            (mul(d("-2"), d("0.5"), Overflow::Fail), "-1.0"),
        ];
        for (got, want) in dec_cases {
            match got {
                Some(Num::Decimal(x)) => assert_eq!(
                    compare_nums(Num::Decimal(x), d(want)),
                    Ordering::Equal,
                    "{x} vs {want}"
                ),
                other => panic!("{other:?}"),
            }
        }
    }
}
