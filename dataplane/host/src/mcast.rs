//! Link-layer multicast groups the kernel joined on an interface (zerotier-vl2.md §5.1:
//! zerotier-one's `scanMulticastGroups` reads `/proc/net/dev_mcast` every 5 s and subscribes to
//! what it finds, e.g. 33:33:00:00:00:01, 01:00:5e:00:00:01, 33:33:ff:…).

use crate::error::{Error, Result};

/// The 6-byte multicast MACs listed for `ifname` in `/proc/net/dev_mcast` text, in file order,
/// without duplicates. Line format: `ifindex name refcount global hex-address`.
pub fn parse_dev_mcast(text: &str, ifname: &str) -> Vec<[u8; 6]> {
    let mut groups: Vec<[u8; 6]> = Vec::new();
    for line in text.lines() {
        let mut fields = line.split_whitespace();
        let (Some(_ifindex), Some(name), Some(_refcount), Some(_global), Some(hex)) =
            (fields.next(), fields.next(), fields.next(), fields.next(), fields.next())
        else {
            continue;
        };
        if name != ifname {
            continue;
        }
        if let Some(mac) = parse_hex_mac(hex)
            && !groups.contains(&mac)
        {
            groups.push(mac);
        }
    }
    groups
}

fn parse_hex_mac(hex: &str) -> Option<[u8; 6]> {
    if hex.len() != 12 || !hex.is_ascii() {
        return None;
    }
    let mut mac = [0u8; 6];
    for (i, byte) in mac.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(mac)
}

/// The multicast groups joined on `ifname`, in the network namespace of the calling *thread*.
/// Reads `/proc/thread-self/net/dev_mcast`: `/proc/net` follows the process's main thread, which
/// may sit in another namespace than a worker that entered one with `setns`.
pub fn link_multicast_groups(ifname: &str) -> Result<Vec<[u8; 6]>> {
    let text = std::fs::read_to_string("/proc/thread-self/net/dev_mcast")
        .or_else(|_| std::fs::read_to_string("/proc/net/dev_mcast"))
        .map_err(|e| Error::from_io(format!("read multicast groups of {ifname} (/proc/net/dev_mcast)"), e))?;
    Ok(parse_dev_mcast(&text, ifname))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_dev_mcast() {
        let text = "\
1    lo              1     0     01005e000001
2    eth0            1     0     333300000001
2    eth0            1     0     01005e000001
2    eth0            2     0     3333ff123456
7    ztdpej2r2h      1     0     333300000001
7    ztdpej2r2h      1     0     3333ff9a1bc2
7    ztdpej2r2h      1     0     333300000001
9    ib0             1     0     00ffffffff12401bffff00000000000000000001
bad line
";
        assert_eq!(
            parse_dev_mcast(text, "eth0"),
            vec![[0x33, 0x33, 0, 0, 0, 1], [0x01, 0x00, 0x5e, 0, 0, 1], [0x33, 0x33, 0xff, 0x12, 0x34, 0x56]]
        );
        assert_eq!(
            parse_dev_mcast(text, "ztdpej2r2h"),
            vec![[0x33, 0x33, 0, 0, 0, 1], [0x33, 0x33, 0xff, 0x9a, 0x1b, 0xc2]]
        );
        // Non-Ethernet addresses (InfiniBand's 20 bytes) are skipped; unknown names give nothing.
        assert!(parse_dev_mcast(text, "ib0").is_empty());
        assert!(parse_dev_mcast(text, "eth").is_empty());
        assert!(parse_dev_mcast("", "eth0").is_empty());
    }

    #[test]
    fn reads_own_namespace() {
        // `lo` is in every namespace; it has no Ethernet groups, so this checks only that the
        // file is there and parses.
        assert!(link_multicast_groups("lo").is_ok());
    }
}
