//! The node's own address, when `--node-ip` does not give it: the address this machine
//! sends from towards its default gateway, as a real kubelet picks it.
//!
//! A node has many addresses (loopback, the pod bridge, Docker's bridge, the lab's link);
//! the one other nodes and the apiserver reach it by is the source address of the interface
//! that carries the default route. Two steps, both asked of the kernel:
//! 1. the default route: the IPv4 routing table in `/proc/net/route` (`Destination` and `Mask`
//!    all zero, lowest `Metric` first) names the gateway;
//! 2. the source address: a UDP socket `connect`ed to the gateway makes the kernel choose the
//!    route and the source address it would use, which `local_addr` then tells. A UDP
//!    `connect` only records the peer: no packet leaves the machine.
//!
//! Without a default route (an isolated VM, a namespace of a test) there is no answer and the
//! kubelet asks for `--node-ip`.

use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};

/// The gateway of the default IPv4 route in `/proc/net/route` text, if there is one.
pub fn default_gateway(route_table: &str) -> Option<Ipv4Addr> {
    route_table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            // Iface Destination Gateway Flags RefCnt Use Metric Mask ...
            let (dest, gateway, flags, metric, mask) =
                (f.get(1)?, f.get(2)?, f.get(3)?, f.get(6)?, f.get(7)?);
            let up_gateway = u32::from_str_radix(flags, 16).ok()? & 0x3 == 0x3; // RTF_UP | RTF_GATEWAY
            (*dest == "00000000" && *mask == "00000000" && up_gateway)
                .then(|| Some((metric.parse::<u32>().ok()?, hex_ipv4(gateway)?)))
                .flatten()
        })
        .min_by_key(|(metric, _)| *metric)
        .map(|(_, gateway)| gateway)
}

/// `/proc/net/route` writes an address as the hex of its bytes in the host's order.
fn hex_ipv4(hex: &str) -> Option<Ipv4Addr> {
    let raw = u32::from_str_radix(hex, 16).ok()?;
    Some(Ipv4Addr::from(raw.to_ne_bytes()))
}

/// The address the kernel sends from towards `gateway`.
pub fn source_address_towards(gateway: Ipv4Addr) -> std::io::Result<IpAddr> {
    let socket = UdpSocket::bind(SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0)))?;
    socket.connect(SocketAddr::from((gateway, 9)))?;
    Ok(socket.local_addr()?.ip())
}

/// This node's address: the source address of its default route, if it has one.
pub fn detect() -> Option<IpAddr> {
    let table = std::fs::read_to_string("/proc/net/route").ok()?;
    let gateway = default_gateway(&table)?;
    source_address_towards(gateway).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const TABLE: &str =
        "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n\
        wlan0\t00000000\t0101A8C0\t0003\t0\t0\t600\t00000000\t0\t0\t0\n\
        eth0\t00000000\t010200C0\t0003\t0\t0\t100\t00000000\t0\t0\t0\n\
        docker0\t000011AC\t00000000\t0001\t0\t0\t0\t0000FFFF\t0\t0\t0\n\
        eth0\t000200C0\t00000000\t0001\t0\t0\t100\t00FFFFFF\t0\t0\t0\n";

    #[test]
    fn the_default_route_with_the_lowest_metric_wins() {
        // 010200C0 is 192.0.2.1 in a little-endian host's order
        let want = if cfg!(target_endian = "little") {
            Ipv4Addr::new(192, 0, 2, 1)
        } else {
            Ipv4Addr::new(1, 2, 0, 192)
        };
        assert_eq!(default_gateway(TABLE), Some(want));
    }

    #[test]
    fn no_default_route_no_gateway() {
        let links_only: Vec<&str> = TABLE
            .lines()
            .filter(|l| l.split_whitespace().nth(1) != Some("00000000"))
            .collect();
        assert_eq!(default_gateway(&links_only.join("\n")), None);
        assert_eq!(default_gateway(""), None);
        // a default route that is not up (RTF_GATEWAY without RTF_UP) does not count
        assert_eq!(
            default_gateway(&TABLE.replace("\t0003\t", "\t0002\t")),
            None
        );
    }

    /// What `ip route` (iproute2, asking the kernel over netlink) says this machine's address
    /// towards its default gateway is; `None` without a default route.
    fn ip_route_source() -> Option<IpAddr> {
        let run = |args: &[&str]| {
            let out = std::process::Command::new("ip").args(args).output().ok()?;
            Some(String::from_utf8_lossy(&out.stdout).into_owned())
        };
        let default = run(&["-4", "route", "show", "default"])?;
        let gateway = default
            .split_whitespace()
            .skip_while(|w| *w != "via")
            .nth(1)?
            .to_string();
        let route = run(&["-4", "route", "get", &gateway])?;
        route
            .split_whitespace()
            .skip_while(|w| *w != "src")
            .nth(1)?
            .parse()
            .ok()
    }

    #[test]
    fn detect_agrees_with_ip_route_on_this_machine() {
        let Some(want) = ip_route_source() else {
            eprintln!("skipped: this machine has no IPv4 default route (or no `ip`)");
            return;
        };
        assert_eq!(detect(), Some(want));
    }

    #[test]
    fn the_source_towards_loopback_is_loopback() {
        let ip = source_address_towards(Ipv4Addr::LOCALHOST).unwrap();
        assert_eq!(ip, IpAddr::V4(Ipv4Addr::LOCALHOST));
    }
}
