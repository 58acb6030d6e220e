//! Rows for Services, Endpoints and EndpointSlices, as `kubectl get svc,ep,endpointslices`
//! prints them (`printService`, `printEndpoints`, `printEndpointSlice`). A Service row shows
//! where it is reachable: its TYPE, the CLUSTER-IP, EXTERNAL-IP (`<none>`, or `<pending>` for a
//! LoadBalancer still waiting for its balancer) and PORT(S) as `port[:nodePort]/protocol`;
//! `-o wide` adds the SELECTOR. Endpoints and slices show at most three addresses, then
//! `+ N more...`.

use serde_json::{json, Value};

use super::{age, col, name, str_at, wide, Col, AGE, NAME};

pub(super) const SERVICE_COLUMNS: &[Col] = &[
    NAME,
    col("Type", "string", "type determines how the Service is exposed. Defaults to ClusterIP. Valid options are ExternalName, ClusterIP, NodePort, and LoadBalancer."),
    col("Cluster-IP", "string", "clusterIP is the IP address of the service and is usually assigned randomly."),
    col("External-IP", "string", "externalIPs is a list of IP addresses for which nodes in the cluster will also accept traffic for this service."),
    col("Port(s)", "string", "The list of ports that are exposed by this service."),
    AGE,
    wide("Selector", "string", "Route service traffic to pods with label keys and values matching this selector."),
];

pub(super) const ENDPOINTS_COLUMNS: &[Col] = &[
    NAME,
    col("Endpoints", "string", "Endpoints of the service"),
    AGE,
];

pub(super) const ENDPOINT_SLICE_COLUMNS: &[Col] = &[
    NAME,
    col("AddressType", "string", "addressType specifies the type of address carried by this EndpointSlice. All addresses in this slice must be the same type."),
    col("Ports", "string", "ports specifies the list of network ports exposed by each endpoint in this slice."),
    col("Endpoints", "string", "endpoints is a list of unique endpoints in this slice."),
    AGE,
];

fn items<'a>(obj: &'a Value, pointer: &str) -> &'a [Value] {
    obj.pointer(pointer)
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice)
}

fn int(v: &Value, key: &str) -> i64 {
    v.get(key).and_then(Value::as_i64).unwrap_or(0)
}

/// `printService`: NAME, TYPE, CLUSTER-IP, EXTERNAL-IP, PORT(S), AGE, SELECTOR.
pub(super) fn service_cells(obj: &Value, now: jiff::Timestamp) -> Value {
    let cluster_ip = items(obj, "/spec/clusterIPs")
        .first()
        .and_then(Value::as_str)
        .unwrap_or("<none>");
    let ports: Vec<String> = items(obj, "/spec/ports")
        .iter()
        .map(|p| {
            let protocol = p.get("protocol").and_then(Value::as_str).unwrap_or("");
            match int(p, "nodePort") {
                0 => format!("{}/{protocol}", int(p, "port")),
                node_port => format!("{}:{node_port}/{protocol}", int(p, "port")),
            }
        })
        .collect();
    let ports = if ports.is_empty() {
        "<none>".to_string()
    } else {
        ports.join(",")
    };
    let selector = obj
        .pointer("/spec/selector")
        .and_then(Value::as_object)
        .filter(|m| !m.is_empty())
        .map_or("<none>".to_string(), |m| {
            // labels.FormatLabels: sorted key=value pairs (a JSON map is already sorted).
            let pairs: Vec<String> = m
                .iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
                .collect();
            pairs.join(",")
        });
    json!([
        name(obj),
        str_at(obj, "/spec/type"),
        cluster_ip,
        external_ip(obj),
        ports,
        age(obj, now),
        selector
    ])
}

/// `getServiceExternalIP` (wide, as the server prints it): the external IPs, and for a
/// LoadBalancer the balancer's addresses (`<pending>` until it has some).
fn external_ip(obj: &Value) -> String {
    let external: Vec<&str> = items(obj, "/spec/externalIPs")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    match str_at(obj, "/spec/type") {
        "ExternalName" => str_at(obj, "/spec/externalName").to_string(),
        "LoadBalancer" => {
            let mut all: Vec<&str> = items(obj, "/status/loadBalancer/ingress")
                .iter()
                .filter_map(|i| {
                    i.get("ip")
                        .or_else(|| i.get("hostname"))
                        .and_then(Value::as_str)
                })
                .collect();
            all.extend(external);
            if all.is_empty() {
                "<pending>".into()
            } else {
                all.join(",")
            }
        }
        _ if external.is_empty() => "<none>".into(),
        _ => external.join(","),
    }
}

/// A list shown up to three items, then `+ N more...`; `empty` when there is nothing.
fn at_most_three(list: Vec<String>, empty: &str) -> String {
    match list.len() {
        0 => empty.to_string(),
        n if n > 3 => format!("{} + {} more...", list[..3].join(","), n - 3),
        _ => list.join(","),
    }
}

/// `printEndpoints`: NAME, ENDPOINTS (`ip:port` of ready addresses), AGE.
pub(super) fn endpoints_cells(obj: &Value, now: jiff::Timestamp) -> Value {
    let subsets = items(obj, "/subsets");
    let endpoints = if subsets.is_empty() {
        "<none>".to_string()
    } else {
        let mut list = Vec::new();
        for subset in subsets {
            let addresses: Vec<&str> = items(subset, "/addresses")
                .iter()
                .filter_map(|a| a.get("ip").and_then(Value::as_str))
                .collect();
            let ports = items(subset, "/ports");
            if ports.is_empty() {
                list.extend(addresses.iter().map(|a| a.to_string()));
            }
            for port in ports {
                for a in &addresses {
                    let host = if a.contains(':') {
                        format!("[{a}]")
                    } else {
                        a.to_string()
                    };
                    list.push(format!("{host}:{}", int(port, "port")));
                }
            }
        }
        at_most_three(list, "")
    };
    json!([name(obj), endpoints, age(obj, now)])
}

/// `printEndpointSlice`: NAME, ADDRESSTYPE, PORTS (numbers, a name when unset, `*` for
/// all), ENDPOINTS (addresses), AGE; an empty list is `<unset>`.
pub(super) fn endpoint_slice_cells(obj: &Value, now: jiff::Timestamp) -> Value {
    let ports: Vec<String> = items(obj, "/ports")
        .iter()
        .map(|p| match p.get("port").and_then(Value::as_i64) {
            Some(n) => n.to_string(),
            None => p
                .get("name")
                .and_then(Value::as_str)
                .unwrap_or("*")
                .to_string(),
        })
        .collect();
    let addresses: Vec<String> = items(obj, "/endpoints")
        .iter()
        .flat_map(|e| items(e, "/addresses"))
        .filter_map(|a| a.as_str().map(String::from))
        .collect();
    json!([
        name(obj),
        str_at(obj, "/addressType"),
        at_most_three(ports, "<unset>"),
        at_most_three(addresses, "<unset>"),
        age(obj, now)
    ])
}

#[cfg(test)]
mod tests {
    use super::super::tests::{ago, now};
    use super::super::{column_definitions, row, IncludeObject};
    use serde_json::json;

    fn cells(resource: &str, obj: serde_json::Value) -> serde_json::Value {
        row(resource, &obj, now(), IncludeObject::None)["cells"].clone()
    }

    #[test]
    fn services_print_type_addresses_ports_and_selector() {
        let created = ago(30).to_string();
        let svc = json!({"metadata": {"name": "web", "creationTimestamp": created},
            "spec": {"type": "NodePort", "clusterIPs": ["10.96.0.7"], "selector": {"app": "web", "tier": "f"},
                "ports": [{"port": 80, "protocol": "TCP", "nodePort": 30080}, {"port": 53, "protocol": "UDP"}]}});
        assert_eq!(
            cells("services", svc),
            json!([
                "web",
                "NodePort",
                "10.96.0.7",
                "<none>",
                "80:30080/TCP,53/UDP",
                "30s",
                "app=web,tier=f"
            ])
        );
        let lb = json!({"metadata": {"name": "lb"}, "spec": {"type": "LoadBalancer", "clusterIPs": ["None"]}});
        assert_eq!(
            cells("services", lb),
            json!([
                "lb",
                "LoadBalancer",
                "None",
                "<pending>",
                "<none>",
                "<unknown>",
                "<none>"
            ])
        );
        let names: Vec<String> = column_definitions("services")
            .iter()
            .map(|c| c["name"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(
            names,
            [
                "Name",
                "Type",
                "Cluster-IP",
                "External-IP",
                "Port(s)",
                "Age",
                "Selector"
            ]
        );
        assert_eq!(column_definitions("services")[6]["priority"], 1);
    }

    #[test]
    fn endpoints_and_slices_show_three_addresses_then_a_count() {
        let ep = json!({"metadata": {"name": "web"}, "subsets": [{
            "addresses": [{"ip": "10.0.0.1"}, {"ip": "10.0.0.2"}, {"ip": "10.0.0.3"}, {"ip": "10.0.0.4"}],
            "notReadyAddresses": [{"ip": "10.0.0.9"}],
            "ports": [{"port": 8080}]}]});
        assert_eq!(
            cells("endpoints", ep)[1],
            "10.0.0.1:8080,10.0.0.2:8080,10.0.0.3:8080 + 1 more..."
        );
        assert_eq!(
            cells("endpoints", json!({"metadata": {"name": "e"}}))[1],
            "<none>"
        );
        let slice = json!({"metadata": {"name": "web-abc"}, "addressType": "IPv4",
            "endpoints": [{"addresses": ["10.0.0.1"]}, {"addresses": ["10.0.0.2"]}],
            "ports": [{"name": "http", "port": 8080}, {"name": "dns"}]});
        assert_eq!(
            cells("endpointslices", slice),
            json!([
                "web-abc",
                "IPv4",
                "8080,dns",
                "10.0.0.1,10.0.0.2",
                "<unknown>"
            ])
        );
        let empty = json!({"metadata": {"name": "e"}, "addressType": "IPv4", "endpoints": []});
        assert_eq!(cells("endpointslices", empty)[2], "<unset>");
    }
}
