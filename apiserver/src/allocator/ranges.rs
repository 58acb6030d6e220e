//! The two ranges a Service takes from: ClusterIPs from `--service-cluster-ip-range` (a CIDR,
//! default `10.96.0.0/12`) and node ports from `--service-node-port-range` (default
//! `30000-32767`), and how a free value is picked in each.
//!
//! A CIDR's first address (the network) and, for IPv4, its last (broadcast) are never given
//! out. Each range is split as kube-apiserver splits it since 1.24 (KEP-3070 for IPs, KEP-3668
//! for ports): a small lower band is left to values asked for explicitly (such as `10.96.0.1`
//! for the `kubernetes` Service and `10.96.0.10` for DNS), and automatic picks start at a
//! random point of the upper band, falling back to the lower band only when the upper is full.

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// A bad range flag.
#[derive(Debug, thiserror::Error)]
pub enum RangeError {
    /// Not `ADDRESS/BITS`, or the prefix is too long to hold any Service.
    #[error("invalid CIDR {0:?}: want ADDRESS/BITS with room for at least one address")]
    Cidr(String),
    /// Not `LOW-HIGH` with 1 ≤ LOW ≤ HIGH ≤ 65535.
    #[error("invalid port range {0:?}: want LOW-HIGH within 1-65535")]
    Ports(String),
}

/// The ClusterIP range: a CIDR.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpRange {
    /// The network address (host bits zero).
    base: IpAddr,
    /// Prefix length.
    bits: u8,
}

impl IpRange {
    /// How many addresses can be given out (network and broadcast excluded), capped at 2^32.
    pub fn size(&self) -> u64 {
        let host_bits = self.width() - u32::from(self.bits);
        let all = if host_bits >= 32 {
            1u64 << 32
        } else {
            1u64 << host_bits
        };
        match self.base {
            IpAddr::V4(_) => all.saturating_sub(2),
            IpAddr::V6(_) => all.saturating_sub(1),
        }
    }

    fn width(&self) -> u32 {
        if self.base.is_ipv4() {
            32
        } else {
            128
        }
    }

    /// The `offset`-th address that can be given out (0 = the first after the network).
    pub fn nth(&self, offset: u64) -> IpAddr {
        let n = u128::from(offset) + 1;
        match self.base {
            IpAddr::V4(a) => IpAddr::V4(Ipv4Addr::from(u32::from(a).wrapping_add(n as u32))),
            IpAddr::V6(a) => IpAddr::V6(Ipv6Addr::from(u128::from(a).wrapping_add(n))),
        }
    }

    /// The offset of `ip` if it can be given out from this range.
    pub fn offset_of(&self, ip: IpAddr) -> Option<u64> {
        let diff = match (self.base, ip) {
            (IpAddr::V4(b), IpAddr::V4(a)) => u128::from(u32::from(a).checked_sub(u32::from(b))?),
            (IpAddr::V6(b), IpAddr::V6(a)) => u128::from(a).checked_sub(u128::from(b))?,
            _ => return None,
        };
        let offset = u64::try_from(diff.checked_sub(1)?).ok()?;
        (offset < self.size()).then_some(offset)
    }

    /// The first address, which the `kubernetes` Service gets.
    pub fn first(&self) -> IpAddr {
        self.nth(0)
    }

    /// kube-apiserver's static band: min(max(16, size/16), 256) addresses at the bottom.
    fn static_band(&self) -> u64 {
        (self.size() / 16).clamp(16, 256).min(self.size())
    }

    /// A free address, or `None` when the range is full. `used` holds taken offsets.
    pub fn pick(&self, used: &BTreeSet<u64>, random: u64) -> Option<IpAddr> {
        pick(self.size(), self.static_band(), used, random).map(|o| self.nth(o))
    }
}

impl std::str::FromStr for IpRange {
    type Err = RangeError;
    fn from_str(s: &str) -> Result<Self, RangeError> {
        let bad = || RangeError::Cidr(s.to_string());
        let (ip, bits) = s.split_once('/').ok_or_else(bad)?;
        let ip: IpAddr = ip.parse().map_err(|_| bad())?;
        let bits: u8 = bits.parse().map_err(|_| bad())?;
        let width = if ip.is_ipv4() { 32 } else { 128 };
        // At least two host bits: a /31 or /32 has no address to give.
        if u32::from(bits) + 2 > width {
            return Err(bad());
        }
        let base = match ip {
            IpAddr::V4(a) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(bits)).unwrap_or(0);
                IpAddr::V4(Ipv4Addr::from(u32::from(a) & mask))
            }
            IpAddr::V6(a) => {
                let mask = u128::MAX.checked_shl(128 - u32::from(bits)).unwrap_or(0);
                IpAddr::V6(Ipv6Addr::from(u128::from(a) & mask))
            }
        };
        Ok(IpRange { base, bits })
    }
}

impl std::fmt::Display for IpRange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.base, self.bits)
    }
}

/// The node port range, inclusive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortRange {
    pub low: u16,
    pub high: u16,
}

impl PortRange {
    fn size(&self) -> u64 {
        u64::from(self.high - self.low) + 1
    }

    /// Whether `port` is in the range.
    pub fn contains(&self, port: i64) -> bool {
        (i64::from(self.low)..=i64::from(self.high)).contains(&port)
    }

    /// kube-apiserver's static band: min(max(16, size/32), 128) ports at the bottom.
    fn static_band(&self) -> u64 {
        (self.size() / 32).clamp(16, 128).min(self.size())
    }

    /// A free port, or `None` when the range is full. `used` holds taken ports.
    pub fn pick(&self, used: &BTreeSet<u16>, random: u64) -> Option<u16> {
        let offsets: BTreeSet<u64> = used
            .iter()
            .filter(|p| self.contains(i64::from(**p)))
            .map(|p| u64::from(p - self.low))
            .collect();
        pick(self.size(), self.static_band(), &offsets, random)
            .and_then(|o| u16::try_from(u64::from(self.low) + o).ok())
    }
}

impl std::str::FromStr for PortRange {
    type Err = RangeError;
    fn from_str(s: &str) -> Result<Self, RangeError> {
        let bad = || RangeError::Ports(s.to_string());
        let (low, high) = s.split_once('-').ok_or_else(bad)?;
        let low: u16 = low.trim().parse().map_err(|_| bad())?;
        let high: u16 = high.trim().parse().map_err(|_| bad())?;
        if low == 0 || low > high {
            return Err(bad());
        }
        Ok(PortRange { low, high })
    }
}

impl std::fmt::Display for PortRange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{}", self.low, self.high)
    }
}

/// A free offset in `0..size`: scanning from a random point of the upper band
/// (`band..size`), then the lower band (`0..band`) from a random point, each wrapping around.
fn pick(size: u64, band: u64, used: &BTreeSet<u64>, random: u64) -> Option<u64> {
    let scan = |from: u64, to: u64| -> Option<u64> {
        let len = to.checked_sub(from).filter(|l| *l > 0)?;
        let start = random % len;
        // Walk the band at most once; a taken offset is skipped in O(log n).
        (0..len)
            .map(|i| from + (start + i) % len)
            .find(|o| !used.contains(o))
    };
    scan(band, size).or_else(|| scan(0, band))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_range_gives_10_96_0_1_first_and_refuses_network_and_broadcast() {
        let r: IpRange = "10.96.0.0/12".parse().unwrap();
        assert_eq!(r.first().to_string(), "10.96.0.1");
        assert_eq!(r.size(), (1 << 20) - 2);
        assert_eq!(r.offset_of("10.96.0.1".parse().unwrap()), Some(0));
        assert_eq!(r.offset_of("10.96.0.0".parse().unwrap()), None);
        assert_eq!(r.offset_of("10.111.255.255".parse().unwrap()), None);
        assert_eq!(
            r.offset_of("10.111.255.254".parse().unwrap()),
            Some(r.size() - 1)
        );
        assert_eq!(r.offset_of("10.112.0.1".parse().unwrap()), None);
        assert_eq!(r.offset_of("::1".parse().unwrap()), None);
        assert_eq!(r.to_string(), "10.96.0.0/12");
        assert!("10.96.0.0/31".parse::<IpRange>().is_err());
        assert!("10.96.0.0".parse::<IpRange>().is_err());
        assert_eq!(
            "10.96.3.4/24".parse::<IpRange>().unwrap().to_string(),
            "10.96.3.0/24"
        );
    }

    #[test]
    fn automatic_picks_prefer_the_upper_band_and_fill_the_range() {
        let r: IpRange = "10.0.0.0/27".parse().unwrap(); // 30 addresses, band 16
        let mut used = BTreeSet::new();
        for i in 0..30 {
            let ip = r.pick(&used, i * 7919).expect("room left");
            let o = r.offset_of(ip).unwrap();
            if i < 14 {
                assert!(o >= 16, "upper band first: {ip}");
            }
            assert!(used.insert(o));
        }
        assert_eq!(r.pick(&used, 3), None);
    }

    #[test]
    fn node_ports() {
        let p: PortRange = "30000-32767".parse().unwrap();
        assert_eq!(p.static_band(), 86);
        let port = p.pick(&BTreeSet::new(), 0).unwrap();
        assert_eq!(port, 30086);
        assert!(p.contains(32767) && !p.contains(29999));
        let full: BTreeSet<u16> = (30000..=32767).collect();
        assert_eq!(p.pick(&full, 5), None);
        assert!("3-2".parse::<PortRange>().is_err());
        assert_eq!(p.to_string(), "30000-32767");
    }
}
