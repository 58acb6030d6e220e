//! The pod network's links on the real kernel, in private network namespaces this test makes
//! (a thread unshares one and holds it; the namespace and everything in it go when the thread
//! ends).

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::sync::mpsc;

use futures::TryStreamExt;
use rtnetlink::packet_route::link::LinkAttribute;
use rtnetlink::{Handle, LinkUnspec};
use runtime::network::link::{self, LinkError};

/// A network namespace of its own, alive as long as this value.
struct PrivateNetns {
    path: PathBuf,
    release: Option<mpsc::Sender<()>>,
    holder: Option<std::thread::JoinHandle<()>>,
}

impl PrivateNetns {
    fn new() -> Self {
        let (path_tx, path_rx) = mpsc::channel();
        let (release, wait) = mpsc::channel::<()>();
        let holder = std::thread::spawn(move || {
            // unshare(2) of the network namespace changes only this thread
            nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET).expect("unshare net");
            let tid = nix::unistd::gettid();
            path_tx
                .send(PathBuf::from(format!("/proc/self/task/{tid}/ns/net")))
                .unwrap();
            let _ = wait.recv();
        });
        PrivateNetns {
            path: path_rx.recv().expect("the holder's namespace"),
            release: Some(release),
            holder: Some(holder),
        }
    }
}

impl Drop for PrivateNetns {
    fn drop(&mut self) {
        drop(self.release.take());
        if let Some(h) = self.holder.take() {
            let _ = h.join();
        }
    }
}

async fn mac_of(h: &Handle, name: &str) -> Result<Vec<u8>, LinkError> {
    let link = h
        .link()
        .get()
        .match_name(name.to_string())
        .execute()
        .try_next()
        .await
        .expect("get link")
        .expect("the link exists");
    Ok(link
        .attributes
        .iter()
        .find_map(|a| match a {
            LinkAttribute::Address(mac) => Some(mac.clone()),
            _ => None,
        })
        .expect("a MAC address"))
}

/// A bridge left to the kernel takes the lowest MAC of its ports, so every pod's ARP entry
/// for the gateway went stale when a pod's veth came or went. Ours is set and stays.
#[test]
fn the_bridge_keeps_its_mac_while_ports_come_and_go() {
    let node = PrivateNetns::new();
    let pods = [PrivateNetns::new(), PrivateNetns::new()];
    let pod_paths: Vec<PathBuf> = pods.iter().map(|p| p.path.clone()).collect();
    let macs = link::on_thread(Some(&node.path), move |h| async move {
        link::ensure_bridge(&h, "brtest0", Ipv4Addr::new(10, 99, 7, 1), 24, 1500).await?;
        let mut seen = vec![mac_of(&h, "brtest0").await?];
        for (i, netns) in pod_paths.iter().enumerate() {
            let host = format!("vtest{i}");
            link::add_veth(&h, "brtest0", &host, netns, 1500).await?;
            // a port with a MAC lower than any the bridge could have
            let index = link::index(&h, &host).await?.expect("the veth");
            h.link()
                .set(
                    LinkUnspec::new_with_index(index)
                        .address(vec![0x02, 0, 0, 0, 0, i as u8 + 1])
                        .build(),
                )
                .execute()
                .await
                .expect("set the veth's MAC");
            seen.push(mac_of(&h, "brtest0").await?);
        }
        link::delete(&h, "vtest0").await?;
        seen.push(mac_of(&h, "brtest0").await?);
        Ok(seen)
    })
    .expect("the links");
    let expected = vec![0x02, 0x42, 10, 99, 7, 1];
    for (step, mac) in macs.iter().enumerate() {
        assert_eq!(
            mac, &expected,
            "the bridge's MAC at step {step}: {macs:02x?}"
        );
    }
}
