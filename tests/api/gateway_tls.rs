//! The upstream over mutual TLS: a bank whose account API accepts only clients with a
//! certificate from its own CA, and serves a certificate from that CA too.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair,
};
use reqwest::Method;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use serde_json::json;
use tokio::net::{TcpListener, TcpStream};

use crate::gateway::{access, bank_router, FakeBank, AISP};
use crate::helpers::spawn_with;
use crate::kyc::{passed_customer, FAST};

/// A private CA, the bank's server certificate and obgate's client certificate, as PEM files
/// in `dir`; the CA and server identity for the bank's side.
struct Pki {
    ca: CertificateDer<'static>,
    server: (CertificateDer<'static>, PrivateKeyDer<'static>),
}

fn pki(dir: &Path) -> Pki {
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, "Test Bank Private CA");
    let ca = CertifiedIssuer::self_signed(ca, KeyPair::generate().unwrap()).unwrap();

    let server_key = KeyPair::generate().unwrap();
    let mut server = CertificateParams::new(vec!["127.0.0.1".to_owned()]).unwrap();
    server.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let server = server.signed_by(&server_key, &ca).unwrap();

    let client_key = KeyPair::generate().unwrap();
    let mut client = CertificateParams::new(Vec::<String>::new()).unwrap();
    client.distinguished_name.push(DnType::CommonName, "obgate");
    client.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let client = client.signed_by(&client_key, &ca).unwrap();

    std::fs::write(dir.join("ca.pem"), ca.pem()).unwrap();
    std::fs::write(dir.join("client.pem"), client.pem()).unwrap();
    std::fs::write(dir.join("client.key"), client_key.serialize_pem()).unwrap();
    // A key that belongs to no certificate here.
    std::fs::write(
        dir.join("other.key"),
        KeyPair::generate().unwrap().serialize_pem(),
    )
    .unwrap();
    Pki {
        ca: ca.der().clone(),
        server: (
            server.der().clone(),
            PrivateKeyDer::Pkcs8(server_key.serialize_der().into()),
        ),
    }
}

/// Accepts only TLS connections that present a client certificate from the CA.
struct MutualTls {
    tcp: TcpListener,
    tls: tokio_rustls::TlsAcceptor,
}

impl axum::serve::Listener for MutualTls {
    type Io = tokio_rustls::server::TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            let Ok((tcp, addr)) = self.tcp.accept().await else {
                continue;
            };
            // A client without a certificate fails here and never reaches the routes.
            if let Ok(stream) = self.tls.accept(tcp).await {
                return (stream, addr);
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.tcp.local_addr()
    }
}

async fn mtls_bank(pki: &Pki, bank: FakeBank) -> String {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    roots.add(pki.ca.clone()).unwrap();
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
        Arc::new(roots),
        provider.clone(),
    )
    .build()
    .unwrap();
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_client_cert_verifier(verifier)
        .with_single_cert(vec![pki.server.0.clone()], pki.server.1.clone_key())
        .unwrap();
    let tcp = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = tcp.local_addr().unwrap();
    let listener = MutualTls {
        tcp,
        tls: tokio_rustls::TlsAcceptor::from(Arc::new(config)),
    };
    let router = bank_router(bank, "not-yours");
    tokio::spawn(async move { axum::serve(listener, router).await });
    format!("https://{addr}/core")
}

#[tokio::test]
async fn the_upstream_is_called_with_obgates_client_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let pki = pki(dir.path());
    let bank = FakeBank::default();
    let url = mtls_bank(&pki, bank.clone()).await;
    let file = |name: &str| dir.path().join(name).display().to_string();
    let (ca, cert, key) = (file("ca.pem"), file("client.pem"), file("client.key"));

    let mut env = FAST.to_vec();
    env.extend([
        ("OBGATE_UPSTREAM_URL", url.as_str()),
        ("OBGATE_UPSTREAM_CA_FILE", ca.as_str()),
        ("OBGATE_UPSTREAM_CLIENT_CERT", cert.as_str()),
        ("OBGATE_UPSTREAM_CLIENT_KEY", key.as_str()),
    ]);
    let app = spawn_with(&env).await;
    // Authorising checks the accounts through the upstream, over mTLS already.
    let a = access(
        &app,
        json!({"Permissions": ["ReadAccountsBasic"]}),
        Some(|all| all[..1].to_vec()),
    )
    .await;
    let r = app
        .send(
            app.request(Method::GET, &format!("{AISP}/accounts"))
                .bearer_auth(&a.token),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["Data"]["Account"].as_array().unwrap().len(), 1);
    assert!(!bank.seen.lock().unwrap().is_empty());

    // Trusting the bank's CA but presenting no certificate: the bank refuses the handshake.
    let mut env = FAST.to_vec();
    env.extend([
        ("OBGATE_UPSTREAM_URL", url.as_str()),
        ("OBGATE_UPSTREAM_CA_FILE", ca.as_str()),
    ]);
    let anonymous = spawn_with(&env).await;
    let customer = passed_customer(&anonymous).await;
    let r = anonymous
        .admin_get(&format!("/api/v0/customers/{customer}/accounts"))
        .await;
    assert_eq!(r.status, 502, "{}", r.text());

    // Presenting the certificate but trusting only the public roots: obgate refuses the
    // bank's private certificate.
    let mut env = FAST.to_vec();
    env.extend([
        ("OBGATE_UPSTREAM_URL", url.as_str()),
        ("OBGATE_UPSTREAM_CLIENT_CERT", cert.as_str()),
        ("OBGATE_UPSTREAM_CLIENT_KEY", key.as_str()),
    ]);
    let untrusting = spawn_with(&env).await;
    let customer = passed_customer(&untrusting).await;
    let r = untrusting
        .admin_get(&format!("/api/v0/customers/{customer}/accounts"))
        .await;
    assert_eq!(r.status, 502, "{}", r.text());
}

#[test]
fn tls_settings_that_cannot_work_stop_start_up_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    pki(dir.path());
    let file = |name: &str| dir.path().join(name).display().to_string();
    let load = |pairs: &[(&str, String)]| {
        let mut vars = vec![(
            "OBGATE_UPSTREAM_URL".to_owned(),
            "https://bank.test".to_owned(),
        )];
        vars.extend(pairs.iter().map(|(k, v)| ((*k).to_owned(), v.clone())));
        obgate::config::Config::load(None, vars)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default()
    };
    let e = load(&[("OBGATE_UPSTREAM_CLIENT_CERT", file("client.pem"))]);
    assert!(
        e.contains("OBGATE_UPSTREAM_CLIENT_KEY") && e.contains("required"),
        "{e}"
    );
    let e = load(&[
        ("OBGATE_UPSTREAM_CLIENT_CERT", file("client.pem")),
        ("OBGATE_UPSTREAM_CLIENT_KEY", file("other.key")),
    ]);
    assert!(
        e.contains("OBGATE_UPSTREAM_CLIENT_KEY") && e.contains("does not match"),
        "{e}"
    );
    let e = load(&[("OBGATE_UPSTREAM_CA_FILE", file("missing.pem"))]);
    assert!(
        e.contains("OBGATE_UPSTREAM_CA_FILE") && e.contains("missing.pem"),
        "{e}"
    );
    let e = load(&[("OBGATE_UPSTREAM_CA_FILE", file("client.key"))]);
    assert!(
        e.contains("OBGATE_UPSTREAM_CA_FILE") && e.contains("no PEM certificate"),
        "{e}"
    );
    let ok = load(&[
        ("OBGATE_UPSTREAM_CA_FILE", file("ca.pem")),
        ("OBGATE_UPSTREAM_CLIENT_CERT", file("client.pem")),
        ("OBGATE_UPSTREAM_CLIENT_KEY", file("client.key")),
    ]);
    assert_eq!(ok, "", "a matching set loads");
}
