//! The PKI against an independent reading of what it wrote: every certificate parsed with
//! x509-parser, its signature checked with the CA's public key, its usages and names read back.

use std::net::IpAddr;
use std::os::unix::fs::PermissionsExt;

use rcgen::PublicKeyData;
use sha2::{Digest, Sha256};
use x509_parser::certificate::X509Certificate;
use x509_parser::prelude::FromDer;

use super::*;

fn lab_sans() -> Sans {
    Sans {
        ips: vec!["10.0.0.2".parse().unwrap(), "::1".parse().unwrap()],
        dns_names: vec!["cp.lab".into()],
    }
}

fn der_of(path: &Path) -> Vec<u8> {
    let text = std::fs::read_to_string(path).unwrap();
    let (_, pem) = x509_parser::pem::parse_x509_pem(text.as_bytes()).unwrap();
    pem.contents
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn create_writes_kubeadms_layout_with_private_keys() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::create(dir.path(), &lab_sans()).unwrap();
    for stem in ["ca", "apiserver", "apiserver-kubelet-client", "admin"] {
        let (crt, key) = (
            dir.path().join(format!("{stem}.crt")),
            dir.path().join(format!("{stem}.key")),
        );
        assert_eq!(mode(&key), 0o600, "{}", key.display());
        assert_eq!(mode(&crt), 0o644, "{}", crt.display());
    }
    assert_eq!(
        pki.cert_path(Credential::Admin),
        dir.path().join("admin.crt")
    );
    let mut names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names.len(), 8, "no temporary files left: {names:?}");
}

#[test]
fn certificates_chain_to_the_ca_with_their_usages_and_names() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::create(dir.path(), &lab_sans()).unwrap();
    let ca_der = der_of(&pki.cert_path(Credential::Ca));
    let (_, ca) = X509Certificate::from_der(&ca_der).unwrap();
    assert_eq!(ca.subject().to_string(), "CN=minik8s-ca");
    assert_eq!(ca.issuer(), ca.subject(), "self-signed");
    assert!(ca.basic_constraints().unwrap().unwrap().value.ca);
    assert!(ca.key_usage().unwrap().unwrap().value.key_cert_sign());
    let years = (ca.validity().not_after - ca.validity().not_before).unwrap();
    assert!(years.whole_days() >= 3650, "{years}");
    ca.verify_signature(None).unwrap();

    let leaf = |credential| {
        let der = der_of(&pki.cert_path(credential));
        let (_, cert) = X509Certificate::from_der(&der).unwrap();
        assert_eq!(cert.issuer(), ca.subject());
        cert.verify_signature(Some(ca.public_key()))
            .expect("signed by the CA");
        assert!(!cert.basic_constraints().unwrap().unwrap().value.ca);
        assert!(cert.key_usage().unwrap().unwrap().value.digital_signature());
        let eku = cert.extended_key_usage().unwrap().unwrap().value.clone();
        (eku.server_auth, eku.client_auth, identity_of(&der).unwrap())
    };

    let (server, client, _) = leaf(Credential::Apiserver);
    assert!(server && !client);
    let (dns, ips) =
        sans_of(&std::fs::read_to_string(pki.cert_path(Credential::Apiserver)).unwrap()).unwrap();
    for name in [
        "cp.lab",
        "kubernetes",
        "kubernetes.default",
        "kubernetes.default.svc",
        "localhost",
    ] {
        assert!(dns.iter().any(|d| d == name), "{name} in {dns:?}");
    }
    for ip in ["10.0.0.2", "::1", "127.0.0.1"] {
        assert!(
            ips.contains(&ip.parse::<IpAddr>().unwrap()),
            "{ip} in {ips:?}"
        );
    }

    for (credential, user) in [
        (Credential::Admin, "kubernetes-admin"),
        (
            Credential::ApiserverKubeletClient,
            "kube-apiserver-kubelet-client",
        ),
    ] {
        let (server, client, id) = leaf(credential);
        assert!(client && !server, "{credential:?}");
        assert_eq!(id.user, user);
        assert_eq!(id.groups, vec!["system:masters"]);
    }
}

#[test]
fn ca_hash_is_the_sha256_of_the_spki_and_stable_across_create_and_load() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::create(dir.path(), &lab_sans()).unwrap();
    let hash = pki.ca_cert_hash();
    // independently: the SPKI as rcgen encodes the CA's public key
    let key =
        KeyPair::from_pem(&std::fs::read_to_string(dir.path().join("ca.key")).unwrap()).unwrap();
    let digest = Sha256::digest(key.subject_public_key_info());
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(hash, format!("sha256:{hex}"));
    assert_eq!(hash.len(), "sha256:".len() + 64);

    let files = |stem: &str| std::fs::read(dir.path().join(stem)).unwrap();
    let before: Vec<_> = ["ca.crt", "ca.key", "apiserver.crt", "admin.key"]
        .map(files)
        .to_vec();
    let again = Pki::create(dir.path(), &lab_sans()).unwrap();
    assert_eq!(again.ca_cert_hash(), hash);
    let after: Vec<_> = ["ca.crt", "ca.key", "apiserver.crt", "admin.key"]
        .map(files)
        .to_vec();
    assert_eq!(before, after, "creating again keeps every file");
    assert_eq!(Pki::load(dir.path()).unwrap().ca_cert_hash(), hash);
}

#[test]
fn a_missing_certificate_is_signed_by_the_existing_ca() {
    let dir = tempfile::tempdir().unwrap();
    let hash = Pki::create(dir.path(), &lab_sans()).unwrap().ca_cert_hash();
    std::fs::remove_file(dir.path().join("admin.crt")).unwrap();
    let pki = Pki::create(dir.path(), &lab_sans()).unwrap();
    assert_eq!(pki.ca_cert_hash(), hash);
    let der = der_of(&pki.cert_path(Credential::Admin));
    let ca_der = der_of(&pki.cert_path(Credential::Ca));
    let (_, ca) = X509Certificate::from_der(&ca_der).unwrap();
    let (_, admin) = X509Certificate::from_der(&der).unwrap();
    admin.verify_signature(Some(ca.public_key())).unwrap();
}

#[test]
fn a_serving_certificate_without_a_new_address_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    Pki::create(dir.path(), &lab_sans()).unwrap();
    let mut more = lab_sans();
    more.ips.push("10.0.0.9".parse().unwrap());
    let err = Pki::create(dir.path(), &more).unwrap_err();
    assert!(matches!(err, PkiError::SansChanged { .. }), "{err:?}");
    assert!(err.to_string().contains("not valid for 10.0.0.9"), "{err}");
}

#[test]
fn issued_client_certificates_name_user_and_groups() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::create(dir.path(), &Sans::default()).unwrap();
    let (cert, key) = pki
        .issue_client("system:node:n1", &["system:nodes", "lab"])
        .unwrap();
    assert!(key.contains("PRIVATE KEY"));
    let (_, pem) = x509_parser::pem::parse_x509_pem(cert.as_bytes()).unwrap();
    let id = identity_of(&pem.contents).unwrap();
    assert_eq!(id.user, "system:node:n1");
    assert_eq!(id.groups, vec!["system:nodes", "lab"]);
    let err = pki.issue_client("u", &["a", "b", "c"]).unwrap_err();
    assert!(
        matches!(err, PkiError::TooManyGroups { count: 3 }),
        "{err:?}"
    );
}

#[test]
fn the_kubeconfig_embeds_ca_certificate_and_key() {
    use base64::Engine;
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::create(dir.path(), &Sans::default()).unwrap();
    let text = pki.admin_kubeconfig("https://127.0.0.1:6443").unwrap();
    let config = kube::config::Kubeconfig::from_yaml(&text).unwrap();
    assert_eq!(
        config.current_context.as_deref(),
        Some("kubernetes-admin@minik8s")
    );
    let cluster = config.clusters[0].cluster.as_ref().unwrap();
    assert_eq!(cluster.server.as_deref(), Some("https://127.0.0.1:6443"));
    let decode = |b64: &str| {
        String::from_utf8(
            base64::engine::general_purpose::STANDARD
                .decode(b64)
                .unwrap(),
        )
        .unwrap()
    };
    let ca = cluster.certificate_authority_data.as_deref().unwrap();
    assert_eq!(decode(ca), pki.ca_cert_pem());
    let user = config.auth_infos[0].auth_info.as_ref().unwrap();
    let (cert, _) = pki.read_pair(Credential::Admin).unwrap();
    assert_eq!(
        decode(user.client_certificate_data.as_deref().unwrap()),
        cert
    );
    assert!(user.client_key_data.is_some());
}

#[test]
fn broken_files_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    assert!(matches!(
        Pki::load(dir.path()).unwrap_err(),
        PkiError::Read { .. }
    ));
    Pki::create(dir.path(), &Sans::default()).unwrap();
    std::fs::write(dir.path().join("ca.crt"), "not a certificate").unwrap();
    let err = Pki::create(dir.path(), &Sans::default()).unwrap_err();
    assert!(
        err.to_string()
            .contains("ca.crt is not a valid certificate"),
        "{err}"
    );
    // a new CA: the certificates of the old one are refused, not kept silently
    std::fs::remove_file(dir.path().join("ca.crt")).unwrap();
    std::fs::remove_file(dir.path().join("ca.key")).unwrap();
    let err = Pki::create(dir.path(), &Sans::default()).unwrap_err();
    assert!(matches!(err, PkiError::NotSignedByCa { .. }), "{err:?}");
    assert!(
        err.to_string()
            .contains("apiserver.crt is not signed by the cluster CA"),
        "{err}"
    );

    // a certificate without its key is refused, not overwritten
    let dir = tempfile::tempdir().unwrap();
    Pki::create(dir.path(), &Sans::default()).unwrap();
    std::fs::remove_file(dir.path().join("admin.key")).unwrap();
    let err = Pki::create(dir.path(), &Sans::default()).unwrap_err();
    assert!(matches!(err, PkiError::KeyMissing { .. }), "{err:?}");
}

#[test]
fn a_der_certificate_turns_back_into_the_same_pem_and_is_valid_now() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::create(dir.path(), &Sans::default()).unwrap();
    let (_, block) = x509_parser::pem::parse_x509_pem(pki.ca_cert_pem().as_bytes()).unwrap();
    let pem = certificate_pem(&block.contents);
    assert_eq!(ca_cert_hash_of(&pem).unwrap(), pki.ca_cert_hash());
    assert_eq!(is_valid_now(&pem), Ok(true));
    assert!(is_valid_now("nonsense").is_err());
}
