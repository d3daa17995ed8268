//! Primitive QFC types: `Hash`, `Address`, `U256`, with qfc-node's borsh
//! layout and `Debug` forms (the node logs these forms, so they matter).

use borsh::{BorshDeserialize, BorshSerialize};
use std::cmp::Ordering;
use std::fmt;

/// 32-byte BLAKE3 hash. `Debug` prints the first 8 bytes, as qfc-node does.
#[derive(
    Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, BorshSerialize, BorshDeserialize,
)]
pub struct Hash(pub [u8; 32]);

impl Hash {
    pub const ZERO: Hash = Hash([0u8; 32]);

    /// The hash from a slice, if it is exactly 32 bytes.
    pub fn from_slice(slice: &[u8]) -> Option<Self> {
        Some(Self(slice.try_into().ok()?))
    }
}

impl fmt::Debug for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Hash(0x{})", hex::encode(&self.0[..8]))
    }
}

impl fmt::Display for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "0x{}", hex::encode(self.0))
    }
}

/// 20-byte account address.
#[derive(
    Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, BorshSerialize, BorshDeserialize,
)]
pub struct Address(pub [u8; 20]);

impl Address {
    pub const ZERO: Address = Address([0u8; 20]);

    /// The address from a slice, if it is exactly 20 bytes.
    pub fn from_slice(slice: &[u8]) -> Option<Self> {
        Some(Self(slice.try_into().ok()?))
    }

    /// Parse `0x` + 40 hex digits (the prefix is optional).
    pub fn from_hex(s: &str) -> Option<Self> {
        let s = s.strip_prefix("0x").unwrap_or(s);
        Self::from_slice(&hex::decode(s).ok()?)
    }

    /// The address of an Ed25519 public key: the last 20 bytes of its BLAKE3.
    pub fn from_public_key(public_key: &[u8; 32]) -> Self {
        let h = blake3::hash(public_key);
        let mut a = [0u8; 20];
        a.copy_from_slice(&h.as_bytes()[12..32]);
        Self(a)
    }

    /// `0x..01`-style address whose last 8 bytes hold `n` big-endian.
    pub const fn from_low_u64(n: u64) -> Self {
        let b = n.to_be_bytes();
        let mut a = [0u8; 20];
        let mut i = 0;
        while i < 8 {
            a[12 + i] = b[i];
            i += 1;
        }
        Self(a)
    }
}

impl fmt::Debug for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Address(0x{})", hex::encode(self.0))
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "0x{}", hex::encode(self.0))
    }
}

/// 256-bit unsigned integer; borsh form is 32 bytes little-endian.
/// Limbs are little-endian `u64`s.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct U256(pub [u64; 4]);

impl U256 {
    pub const ZERO: U256 = U256([0; 4]);
    pub const MAX: U256 = U256([u64::MAX; 4]);

    pub const fn from_u64(v: u64) -> Self {
        Self([v, 0, 0, 0])
    }

    pub const fn from_u128(v: u128) -> Self {
        Self([v as u64, (v >> 64) as u64, 0, 0])
    }

    pub fn from_le_bytes(b: &[u8; 32]) -> Self {
        let mut l = [0u64; 4];
        for (i, limb) in l.iter_mut().enumerate() {
            *limb = u64::from_le_bytes(b[i * 8..i * 8 + 8].try_into().expect("8 bytes"));
        }
        Self(l)
    }

    pub fn to_le_bytes(&self) -> [u8; 32] {
        let mut b = [0u8; 32];
        for (i, limb) in self.0.iter().enumerate() {
            b[i * 8..i * 8 + 8].copy_from_slice(&limb.to_le_bytes());
        }
        b
    }

    pub fn to_be_bytes(&self) -> [u8; 32] {
        let mut b = self.to_le_bytes();
        b.reverse();
        b
    }

    pub fn is_zero(&self) -> bool {
        self.0 == [0; 4]
    }

    /// The value as `u128`, if it fits.
    pub fn to_u128(&self) -> Option<u128> {
        (self.0[2] == 0 && self.0[3] == 0).then(|| self.0[0] as u128 | (self.0[1] as u128) << 64)
    }

    pub fn checked_add(self, o: Self) -> Option<Self> {
        let mut r = [0u64; 4];
        let mut carry = 0u128;
        for (i, limb) in r.iter_mut().enumerate() {
            let s = self.0[i] as u128 + o.0[i] as u128 + carry;
            *limb = s as u64;
            carry = s >> 64;
        }
        (carry == 0).then_some(Self(r))
    }

    pub fn checked_sub(self, o: Self) -> Option<Self> {
        if self < o {
            return None;
        }
        let mut r = [0u64; 4];
        let mut borrow = 0u64;
        for (i, limb) in r.iter_mut().enumerate() {
            let (d1, b1) = self.0[i].overflowing_sub(o.0[i]);
            let (d2, b2) = d1.overflowing_sub(borrow);
            *limb = d2;
            borrow = (b1 || b2) as u64;
        }
        Some(Self(r))
    }

    pub fn checked_mul(self, o: Self) -> Option<Self> {
        let mut r = [0u64; 8];
        for i in 0..4 {
            let mut carry = 0u128;
            for j in 0..4 {
                let t = self.0[i] as u128 * o.0[j] as u128 + r[i + j] as u128 + carry;
                r[i + j] = t as u64;
                carry = t >> 64;
            }
            r[i + 4] = carry as u64;
        }
        (r[4..] == [0; 4]).then(|| Self([r[0], r[1], r[2], r[3]]))
    }

    /// Divide by a small number, returning quotient and remainder.
    fn div_rem_u64(self, d: u64) -> (Self, u64) {
        let mut q = [0u64; 4];
        let mut rem = 0u128;
        for i in (0..4).rev() {
            let cur = (rem << 64) | self.0[i] as u128;
            q[i] = (cur / d as u128) as u64;
            rem = cur % d as u128;
        }
        (Self(q), rem as u64)
    }

    /// Ethereum JSON-RPC quantity: `0x` + lowercase hex without leading zeros.
    pub fn to_quantity(&self) -> String {
        let s = hex::encode(self.to_be_bytes());
        let t = s.trim_start_matches('0');
        if t.is_empty() {
            "0x0".into()
        } else {
            format!("0x{t}")
        }
    }

    /// Parse a decimal string.
    pub fn from_dec_str(s: &str) -> Option<Self> {
        if s.is_empty() {
            return None;
        }
        let mut v = Self::ZERO;
        for c in s.bytes() {
            let d = (c as char).to_digit(10)?;
            v = v
                .checked_mul(Self::from_u64(10))?
                .checked_add(Self::from_u64(d as u64))?;
        }
        Some(v)
    }
}

impl Ord for U256 {
    fn cmp(&self, o: &Self) -> Ordering {
        self.0.iter().rev().cmp(o.0.iter().rev())
    }
}

impl PartialOrd for U256 {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}

impl fmt::Display for U256 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_zero() {
            return f.write_str("0");
        }
        let mut digits = Vec::new();
        let mut v = *self;
        while !v.is_zero() {
            let (q, r) = v.div_rem_u64(10);
            digits.push(b'0' + r as u8);
            v = q;
        }
        digits.reverse();
        f.write_str(std::str::from_utf8(&digits).expect("ascii digits"))
    }
}

impl fmt::Debug for U256 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "U256({self})")
    }
}

impl From<u64> for U256 {
    fn from(v: u64) -> Self {
        Self::from_u64(v)
    }
}

impl From<u128> for U256 {
    fn from(v: u128) -> Self {
        Self::from_u128(v)
    }
}

impl BorshSerialize for U256 {
    fn serialize<W: std::io::Write>(&self, w: &mut W) -> std::io::Result<()> {
        w.write_all(&self.to_le_bytes())
    }
}

impl BorshDeserialize for U256 {
    fn deserialize_reader<R: std::io::Read>(r: &mut R) -> std::io::Result<Self> {
        let mut b = [0u8; 32];
        r.read_exact(&mut b)?;
        Ok(Self::from_le_bytes(&b))
    }
}

/// BLAKE3 of `data`, as a [`Hash`] (the hash function of every QFC structure).
pub fn blake3_hash(data: &[u8]) -> Hash {
    Hash(*blake3::hash(data).as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn u256_is_32_le_bytes_in_borsh() {
        let v = U256::from_u64(0x0102);
        let b = borsh::to_vec(&v).unwrap();
        assert_eq!(b.len(), 32);
        assert_eq!(&b[..3], &[0x02, 0x01, 0x00]);
        assert_eq!(borsh::from_slice::<U256>(&b).unwrap(), v);
    }

    #[test]
    fn u256_arithmetic_and_display() {
        let e27 = U256::from_dec_str("1000000000000000000000000000").unwrap();
        assert_eq!(e27, U256::from_u128(10u128.pow(27)));
        assert_eq!(e27.to_string(), "1000000000000000000000000000");
        assert_eq!(format!("{e27:?}"), "U256(1000000000000000000000000000)");
        assert_eq!(e27.to_quantity(), "0x33b2e3c9fd0803ce8000000");
        assert_eq!(U256::ZERO.to_quantity(), "0x0");
        let big = U256::from_u128(u128::MAX)
            .checked_add(U256::from_u64(1))
            .unwrap();
        assert_eq!(big.0, [0, 0, 1, 0]);
        assert_eq!(
            big.checked_sub(U256::from_u64(1)).unwrap(),
            U256::from_u128(u128::MAX)
        );
        assert!(U256::from_u64(1).checked_sub(U256::from_u64(2)).is_none());
        assert!(U256::MAX.checked_add(U256::from_u64(1)).is_none());
        assert!(big > U256::from_u128(u128::MAX));
        assert_eq!(
            U256::from_u64(21_000)
                .checked_mul(U256::from_u64(1_000_000_000))
                .unwrap(),
            U256::from_u64(21_000_000_000_000)
        );
        assert!(U256::MAX.checked_mul(U256::from_u64(2)).is_none());
    }

    #[test]
    fn debug_forms_match_qfc_node() {
        let h = Hash([0xab; 32]);
        assert_eq!(format!("{h:?}"), "Hash(0xabababababababab)");
        assert_eq!(
            format!("{:?}", Address::from_low_u64(1)),
            "Address(0x0000000000000000000000000000000000000001)"
        );
    }
}
