//! The answers to the commonest questions, encoded once per snapshot of the caches instead of
//! once per query: a pod's resolver asks for the A and AAAA records of a Service name over and
//! over, and parsing the question, looking it up and encoding the response cost more CPU than
//! the socket calls around it.
//!
//! For every name of the index, the query a stub resolver sends for its A and its AAAA
//! records (recursion desired, no other flag, one question of class IN with the name in
//! lowercase, no EDNS) is answered once by [`response::reply`] itself, and the response kept
//! under the query's bytes. A datagram whose bytes after the message ID are exactly one of
//! those queries gets that response with its own ID: byte for byte what `reply` would have
//! answered, since `reply` depends on nothing else. Any other query (another type or case, a
//! flag, EDNS, a name not in the index) takes the full path. Read next: `server.rs`.

use std::collections::HashMap;

use hickory_proto::rr::RecordType;

use crate::records::Index;
use crate::response::{self, Reply, Transport};

/// The flags of a stub resolver's query: RD (recursion desired), nothing else.
const STUB_FLAGS: [u8; 2] = [0x01, 0x00];

/// The types asked for in advance.
const TYPES: [RecordType; 2] = [RecordType::A, RecordType::AAAA];

/// Responses over UDP by query bytes, both without their two-byte message ID.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Prepared {
    responses: HashMap<Box<[u8]>, Box<[u8]>>,
}

impl Prepared {
    /// The responses from `index` to the stub queries for A and AAAA of every name it holds
    /// (none before the caches have `synced`). Those of a name whose records are the same in
    /// `previous` (the index and responses of the last synced snapshot) are copied from it:
    /// encoding is most of the cost of a rebuild, and most rebuilds change a few names.
    pub fn build(index: &Index, synced: bool, previous: Option<(&Index, &Prepared)>) -> Prepared {
        let mut responses = HashMap::new();
        if !synced {
            return Prepared { responses };
        }
        responses.reserve(index.names().count() * TYPES.len());
        for name in index.names() {
            let unchanged = previous.filter(|(old, _)| index.same_records(old, name));
            for qtype in TYPES {
                let Some(query) = stub_query(name, qtype) else {
                    continue;
                };
                let key = &query[2..];
                if let Some(bytes) = unchanged.and_then(|(_, old)| old.responses.get(key)) {
                    responses.insert(key.into(), bytes.clone());
                    continue;
                }
                if let Reply::Message(bytes) = response::reply(&query, index, true, Transport::Udp)
                {
                    responses.insert(key.into(), bytes[2..].into());
                }
            }
        }
        Prepared { responses }
    }

    /// How many responses are held.
    pub fn len(&self) -> usize {
        self.responses.len()
    }

    /// Whether none is.
    pub fn is_empty(&self) -> bool {
        self.responses.is_empty()
    }

    /// Write the prepared response to the UDP `query` into `out` (its ID first), if there is
    /// one; false leaves `out` untouched.
    pub fn answer(&self, query: &[u8], out: &mut Vec<u8>) -> bool {
        let (Some(id), Some(rest)) = (query.get(..2), query.get(2..)) else {
            return false;
        };
        let Some(response) = self.responses.get(rest) else {
            return false;
        };
        out.clear();
        out.extend_from_slice(id);
        out.extend_from_slice(response);
        true
    }
}

/// A stub resolver's query (message ID 0) for `qtype` records of `name` (lowercase, no final
/// dot), or None when `name` cannot be a DNS name.
fn stub_query(name: &str, qtype: RecordType) -> Option<Vec<u8>> {
    let mut query = Vec::with_capacity(name.len() + 18);
    query.extend_from_slice(&[0, 0]);
    query.extend_from_slice(&STUB_FLAGS);
    query.extend_from_slice(&[0, 1, 0, 0, 0, 0, 0, 0]);
    for label in name.split('.') {
        let len = u8::try_from(label.len())
            .ok()
            .filter(|l| (1..64).contains(l))?;
        query.push(len);
        query.extend_from_slice(label.as_bytes());
    }
    query.push(0);
    if query.len() - 12 > 255 {
        return None;
    }
    query.extend_from_slice(&u16::from(qtype).to_be_bytes());
    query.extend_from_slice(&1u16.to_be_bytes()); // class IN
    Some(query)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::Snapshot;
    use hickory_proto::op::{Edns, Message, Query};
    use hickory_proto::rr::Name;
    use k8s_openapi::api::core::v1::Service;
    use k8s_openapi::api::discovery::v1::EndpointSlice;

    fn service(name: &str, ip: &str) -> Service {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": name, "namespace": "default"},
            "spec": {"clusterIP": ip, "ports": [{"name": "http", "port": 80}]},
        }))
        .unwrap()
    }

    fn snapshot() -> Snapshot {
        let services = [
            service("web", "10.96.0.20"),
            service("db", "None"),
            serde_json::from_value(serde_json::json!({
                "metadata": {"name": "ext", "namespace": "default"},
                "spec": {"type": "ExternalName", "externalName": "example.com"},
            }))
            .unwrap(),
        ];
        let slice: EndpointSlice = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "db-1", "namespace": "default",
                         "labels": {"kubernetes.io/service-name": "db"}},
            "addressType": "IPv4",
            "endpoints": [{"addresses": ["10.244.0.5"], "hostname": "db-0"},
                          {"addresses": ["10.244.1.6"]}],
            "ports": [{"name": "sql", "port": 5432}],
        }))
        .unwrap();
        Snapshot::new(Index::build("cluster.local", &services, [&slice]), true)
    }

    fn query(name: &str, qtype: RecordType, id: u16) -> Message {
        let mut query = Message::query();
        query.metadata.id = id;
        query.metadata.recursion_desired = true;
        query.add_query(Query::query(Name::from_ascii(name).unwrap(), qtype));
        query
    }

    #[test]
    fn a_prepared_answer_is_the_full_paths_byte_for_byte() {
        let snapshot = snapshot();
        assert!(snapshot.prepared.len() >= 2 * 6, "{:?}", snapshot.prepared);
        let mut out = Vec::new();
        for name in [
            "web.default.svc.cluster.local.",
            "db.default.svc.cluster.local.",
            "db-0.db.default.svc.cluster.local.",
            "10-244-1-6.db.default.svc.cluster.local.",
            "ext.default.svc.cluster.local.",
            "default.svc.cluster.local.",
            "_http._tcp.web.default.svc.cluster.local.",
        ] {
            for qtype in TYPES {
                // hickory's encoding of the question is a stub resolver's.
                let bytes = query(name, qtype, 0xbeef).to_vec().unwrap();
                assert!(
                    snapshot.prepared.answer(&bytes, &mut out),
                    "{name} {qtype} not prepared"
                );
                let Reply::Message(full) =
                    response::reply(&bytes, &snapshot.index, true, Transport::Udp)
                else {
                    panic!("no message for {name} {qtype}");
                };
                assert_eq!(out, full, "{name} {qtype}");
                assert_eq!(out[..2], [0xbe, 0xef]);
            }
        }
    }

    #[test]
    fn other_queries_take_the_full_path() {
        let snapshot = snapshot();
        let mut out = Vec::new();
        let name = "web.default.svc.cluster.local.";
        let others = [
            // Another case, another type, a name not in the index, one outside the zone.
            query("Web.default.svc.cluster.local.", RecordType::A, 1),
            query(name, RecordType::SRV, 1),
            query("nope.default.svc.cluster.local.", RecordType::A, 1),
            query("example.com.", RecordType::A, 1),
            // EDNS, and no RD flag.
            {
                let mut q = query(name, RecordType::A, 1);
                q.set_edns(Edns::new());
                q
            },
            {
                let mut q = query(name, RecordType::A, 1);
                q.metadata.recursion_desired = false;
                q
            },
        ];
        for other in others {
            let bytes = other.to_vec().unwrap();
            assert!(!snapshot.prepared.answer(&bytes, &mut out), "{other:?}");
        }
        assert!(out.is_empty());
        assert!(!snapshot.prepared.answer(&[0x12], &mut out));
    }

    #[test]
    fn a_rebuild_reuses_unchanged_names_and_matches_a_fresh_build() {
        let build = |web_ip: &str, extra: bool| {
            let mut services = vec![service("web", web_ip), service("api", "10.96.0.30")];
            if extra {
                services.push(service("new", "10.96.0.40"));
            }
            Index::build(
                "cluster.local",
                &services,
                std::iter::empty::<&EndpointSlice>(),
            )
        };
        let first = Snapshot::new(build("10.96.0.20", false), true);
        // web's address changes, a Service appears, api stays as it was.
        let next = Snapshot::following(build("10.96.0.21", true), true, Some(&first));
        let fresh = Snapshot::new(build("10.96.0.21", true), true);
        assert_eq!(next.prepared, fresh.prepared);
        let mut out = Vec::new();
        let web = query("web.default.svc.cluster.local.", RecordType::A, 7);
        assert!(next.prepared.answer(&web.to_vec().unwrap(), &mut out));
        let answer = Message::from_vec(&out).unwrap();
        let ip: std::net::Ipv4Addr = "10.96.0.21".parse().unwrap();
        assert!(
            matches!(&answer.answers[..], [r] if r.data == hickory_proto::rr::RData::A(ip.into())),
            "{answer:?}"
        );
        // An unsynced previous snapshot lends nothing; an unsynced one prepares nothing.
        let after_unsynced = Snapshot::following(
            build("10.96.0.21", true),
            true,
            Some(&Snapshot::new(Index::empty("cluster.local"), false)),
        );
        assert_eq!(after_unsynced.prepared, fresh.prepared);
    }

    #[test]
    fn nothing_is_prepared_before_the_caches_sync() {
        let snapshot = Snapshot::new(Index::empty("cluster.local"), false);
        assert!(snapshot.prepared.is_empty());
    }
}
