//! From a query's bytes to a response's bytes: parse the DNS message (hickory-proto), ask the
//! [`Index`] about its one question, and write the answer the way an authoritative server
//! does, or tell the server to forward the query when the name is not in the cluster domain.
//!
//! - Answers are authoritative (AA), with a short TTL so that a changed Service is seen soon.
//! - NXDOMAIN and NODATA carry the zone's SOA in the authority section (RFC 2308), whose
//!   minimum field tells resolvers how long to cache the negative answer.
//! - An SRV answer brings the A records of its targets in the additional section, sparing the
//!   client a second question.
//! - Over UDP an answer larger than the client can take (512 bytes, or its EDNS payload size)
//!   is sent truncated (TC), and the client asks again over TCP.
//!
//! Read next: `server.rs`, which owns the sockets.

use std::net::Ipv4Addr;

use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::rdata::{A, CNAME, PTR, SOA, SRV, TXT};
use hickory_proto::rr::{Name, RData, Record, RecordType};

use crate::records::{Answer, Index, Rdata};

/// The TTL of every record we answer with, in seconds (CoreDNS' `kubernetes` default).
pub const TTL: u32 = 5;

/// The EDNS payload size we announce and honour (the DNS Flag Day 2020 figure).
const EDNS_PAYLOAD: u16 = 1232;

/// A DNS message's size limit over UDP without EDNS (RFC 1035).
const UDP_PAYLOAD: u16 = 512;

/// How the query came in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    /// A datagram: the response must fit the client's payload size.
    Udp,
    /// A TCP stream: no size limit but 64 KiB.
    Tcp,
}

/// What to do with one query.
#[derive(Debug, PartialEq, Eq)]
pub enum Reply {
    /// Send these bytes back.
    Message(Vec<u8>),
    /// The name is outside the cluster domain: forward the query upstream.
    Forward,
    /// Send nothing (not a query at all, or too short to answer).
    Drop,
}

/// The reply to the DNS message `query`, from `index`; `synced`: whether the watch caches had
/// their first full lists when it was built (until then cluster names are SERVFAIL).
pub fn reply(query: &[u8], index: &Index, synced: bool, transport: Transport) -> Reply {
    let Ok(request) = Message::from_vec(query) else {
        return error(query, ResponseCode::FormErr).map_or(Reply::Drop, Reply::Message);
    };
    if request.metadata.message_type != MessageType::Query {
        return Reply::Drop;
    }
    if request.metadata.op_code != OpCode::Query {
        return Reply::Message(encode(
            &header_only(&request, ResponseCode::NotImp),
            transport,
            0,
        ));
    }
    let [question] = request.queries.as_slice() else {
        return Reply::Message(encode(
            &header_only(&request, ResponseCode::FormErr),
            transport,
            0,
        ));
    };
    let answer = index.lookup(&question.name().to_ascii(), question.query_type());
    if answer == Answer::NotOurs {
        return Reply::Forward;
    }
    if !synced {
        return Reply::Message(encode(
            &header_only(&request, ResponseCode::ServFail),
            transport,
            0,
        ));
    }
    let mut response = header_only(&request, ResponseCode::NoError);
    response.metadata.authoritative = true;
    match answer {
        Answer::Records(records) => add_records(&mut response, question, &records, index),
        Answer::NoData => {
            response.add_authority(soa(index));
        }
        Answer::NxDomain => {
            response.metadata.response_code = ResponseCode::NXDomain;
            response.add_authority(soa(index));
        }
        Answer::NotOurs => unreachable!("forwarded above"),
    }
    let client_payload = request.edns.as_ref().map_or(0, Edns::max_payload);
    Reply::Message(encode(&response, transport, client_payload))
}

/// A response with no record carrying `code`, for `query`'s bytes (None when they are too
/// short to hold even a message ID).
pub fn error(query: &[u8], code: ResponseCode) -> Option<Vec<u8>> {
    let request = match Message::from_vec(query) {
        Ok(request) => request,
        Err(_) => {
            let id = u16::from_be_bytes([*query.first()?, *query.get(1)?]);
            if query.len() < 12 {
                return None;
            }
            Message::new(id, MessageType::Query, OpCode::Query)
        }
    };
    header_only(&request, code).to_vec().ok()
}

/// The response to `request` with its question, flags and EDNS, and no record yet.
fn header_only(request: &Message, code: ResponseCode) -> Message {
    let mut response = Message::response(request.metadata.id, request.metadata.op_code);
    response.metadata.recursion_desired = request.metadata.recursion_desired;
    response.metadata.recursion_available = true;
    response.metadata.response_code = code;
    response.add_queries(request.queries.iter().cloned());
    if request.edns.is_some() {
        let mut edns = Edns::new();
        edns.set_max_payload(EDNS_PAYLOAD);
        response.set_edns(edns);
    }
    response
}

/// The answer section for `records` about `question`; an SRV's target's A records go in the
/// additional section.
fn add_records(response: &mut Message, question: &Query, records: &[Rdata], index: &Index) {
    let owner = question.name();
    for rdata in records {
        match rdata {
            Rdata::A(ip) => {
                response.add_answer(a_record(owner.clone(), *ip));
            }
            Rdata::Txt(text) => {
                let data = RData::TXT(TXT::new(vec![text.clone()]));
                response.add_answer(Record::from_rdata(owner.clone(), TTL, data));
            }
            Rdata::Cname(alias) | Rdata::Ptr(alias) => {
                let Ok(target) = fqdn(alias) else {
                    continue;
                };
                let data = match rdata {
                    Rdata::Cname(_) => RData::CNAME(CNAME(target)),
                    _ => RData::PTR(PTR(target)),
                };
                response.add_answer(Record::from_rdata(owner.clone(), TTL, data));
            }
            Rdata::Srv(srv) => {
                let Ok(target) = fqdn(&srv.target) else {
                    continue;
                };
                let data = SRV::new(srv.priority, srv.weight, srv.port, target.clone());
                response.add_answer(Record::from_rdata(owner.clone(), TTL, RData::SRV(data)));
                if let Answer::Records(addresses) = index.lookup(&srv.target, RecordType::A) {
                    for address in addresses {
                        if let Rdata::A(ip) = address {
                            response.add_additional(a_record(target.clone(), ip));
                        }
                    }
                }
            }
        }
    }
}

fn a_record(owner: Name, ip: Ipv4Addr) -> Record {
    Record::from_rdata(owner, TTL, RData::A(A(ip)))
}

/// The zone's SOA record: what negative answers are cached by (its minimum, our TTL).
fn soa(index: &Index) -> Record {
    let zone = index.zone();
    let (Ok(apex), Ok(mname), Ok(rname)) = (
        fqdn(zone),
        fqdn(&format!("ns.dns.{zone}")),
        fqdn(&format!("hostmaster.{zone}")),
    ) else {
        return Record::from_rdata(Name::root(), TTL, RData::A(A(Ipv4Addr::UNSPECIFIED)));
    };
    let data = SOA::new(mname, rname, 1, 7200, 1800, 86400, TTL);
    Record::from_rdata(apex, TTL, RData::SOA(data))
}

/// `name` (without the final dot) as a fully qualified DNS name.
fn fqdn(name: &str) -> Result<Name, hickory_proto::ProtoError> {
    Name::from_ascii(format!("{name}."))
}

/// `response` on the wire; over UDP cut to a header and question with TC set when larger than
/// the client's payload size (`client_payload`, 0 without EDNS).
fn encode(response: &Message, transport: Transport, client_payload: u16) -> Vec<u8> {
    let bytes = response.to_vec().unwrap_or_default();
    let limit = usize::from(client_payload.clamp(UDP_PAYLOAD, EDNS_PAYLOAD));
    if transport == Transport::Tcp || bytes.len() <= limit {
        return bytes;
    }
    response.truncate().to_vec().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What [`super::reply`] answers from, as the server's snapshot holds it.
    struct Snapshot {
        index: Index,
        synced: bool,
    }

    impl Snapshot {
        fn new(index: Index, synced: bool) -> Snapshot {
            Snapshot { index, synced }
        }
    }

    fn reply(query: &[u8], snapshot: &Snapshot, transport: Transport) -> Reply {
        super::reply(query, &snapshot.index, snapshot.synced, transport)
    }

    fn snapshot(synced: bool) -> Snapshot {
        Snapshot::new(Index::empty("cluster.local"), synced)
    }

    fn ask(name: &str, qtype: RecordType, snapshot: &Snapshot) -> Reply {
        let mut query = Message::query();
        query.add_query(Query::query(Name::from_ascii(name).unwrap(), qtype));
        reply(&query.to_vec().unwrap(), snapshot, Transport::Udp)
    }

    fn decode(reply: Reply) -> Message {
        match reply {
            Reply::Message(bytes) => Message::from_vec(&bytes).unwrap(),
            other => panic!("no message: {other:?}"),
        }
    }

    #[test]
    fn pod_name_is_answered_authoritatively() {
        let response = decode(ask(
            "10-1-2-3.default.pod.cluster.local.",
            RecordType::A,
            &snapshot(true),
        ));
        assert!(response.metadata.authoritative);
        assert_eq!(response.metadata.response_code, ResponseCode::NoError);
        assert_eq!(
            &response.answers[0].data,
            &RData::A(A("10.1.2.3".parse().unwrap()))
        );
    }

    #[test]
    fn missing_name_is_nxdomain_with_the_soa() {
        let response = decode(ask("x.cluster.local.", RecordType::A, &snapshot(true)));
        assert_eq!(response.metadata.response_code, ResponseCode::NXDomain);
        assert!(response.answers.is_empty());
        assert_eq!(response.authorities[0].record_type(), RecordType::SOA);
    }

    #[test]
    fn other_names_are_forwarded_even_before_the_caches_sync() {
        let reply = ask("example.com.", RecordType::A, &snapshot(false));
        assert_eq!(reply, Reply::Forward);
    }

    #[test]
    fn cluster_names_are_servfail_until_the_caches_sync() {
        let response = decode(ask(
            "web.default.svc.cluster.local.",
            RecordType::A,
            &snapshot(false),
        ));
        assert_eq!(response.metadata.response_code, ResponseCode::ServFail);
    }

    /// A snapshot with a headless Service `big.default` of `n` ready endpoints.
    fn headless_with(n: u8) -> Snapshot {
        use k8s_openapi::api::core::v1::{Service, ServiceSpec};
        use k8s_openapi::api::discovery::v1::{Endpoint, EndpointSlice};
        use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
        let meta = |name: &str| ObjectMeta {
            namespace: Some("default".into()),
            name: Some(name.into()),
            labels: Some([("kubernetes.io/service-name".into(), "big".into())].into()),
            ..Default::default()
        };
        let service = Service {
            metadata: meta("big"),
            spec: Some(ServiceSpec {
                cluster_ip: Some("None".into()),
                ..Default::default()
            }),
            ..Default::default()
        };
        let slice = EndpointSlice {
            metadata: meta("big-1"),
            address_type: "IPv4".into(),
            endpoints: (1..=n)
                .map(|i| Endpoint {
                    addresses: vec![format!("10.244.0.{i}")],
                    ..Default::default()
                })
                .collect(),
            ports: None,
        };
        Snapshot::new(Index::build("cluster.local", [&service], [&slice]), true)
    }

    #[test]
    fn a_large_answer_is_truncated_over_udp_and_whole_over_tcp() {
        let snapshot = headless_with(60);
        let mut query = Message::query();
        let name = Name::from_ascii("big.default.svc.cluster.local.").unwrap();
        query.add_query(Query::query(name, RecordType::A));
        let bytes = query.to_vec().unwrap();
        let udp = decode(reply(&bytes, &snapshot, Transport::Udp));
        assert!(udp.metadata.truncation);
        assert!(udp.answers.is_empty());
        let tcp = decode(reply(&bytes, &snapshot, Transport::Tcp));
        assert!(!tcp.metadata.truncation);
        assert_eq!(tcp.answers.len(), 60);
        // A client announcing a larger EDNS payload gets the whole answer over UDP.
        query.set_edns(Edns::new().set_max_payload(4096).clone());
        let edns = decode(reply(&query.to_vec().unwrap(), &snapshot, Transport::Udp));
        assert!(!edns.metadata.truncation);
        assert_eq!(edns.answers.len(), 60);
    }

    #[test]
    fn garbage_is_formerr_or_dropped() {
        let mut junk = vec![0x12, 0x34, 1, 0, 0, 5];
        junk.resize(20, 0xff);
        let response = decode(reply(&junk, &snapshot(true), Transport::Udp));
        assert_eq!(response.metadata.id, 0x1234);
        assert_eq!(response.metadata.response_code, ResponseCode::FormErr);
        assert_eq!(reply(&[1], &snapshot(true), Transport::Udp), Reply::Drop);
    }
}
