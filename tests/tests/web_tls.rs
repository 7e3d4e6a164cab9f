//! The web app on the office LAN speaks HTTPS, with a certificate from the
//! hub's office web CA: a real TLS handshake from a client that trusts only
//! that CA, cookies marked `Secure`, nothing served in clear. A LAN address
//! without a certificate is refused unless plain HTTP was chosen; the CA
//! vouches only for LAN addresses and names, even for a certificate it was
//! made to sign for a public site.

use std::sync::Arc;
use std::time::Duration;

use htx_core::pki::{self, WebIdentity};
use htx_tests::{TestHub, configure, run, run_within, spawn, wait_for_api};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A client that trusts only `ca_pem`.
fn client(ca_pem: &str) -> tokio_rustls::TlsConnector {
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(c.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    tokio_rustls::TlsConnector::from(Arc::new(config))
}

/// `GET path` over TLS to `addr` as `name`: the response's head.
async fn get_tls(
    ca_pem: &str,
    addr: std::net::SocketAddr,
    name: &str,
    path: &str,
) -> Result<String, std::io::Error> {
    let tcp = tokio::net::TcpStream::connect(addr).await?;
    let server = ServerName::try_from(name.to_owned()).unwrap();
    let mut tls = client(ca_pem).connect(server, tcp).await?;
    tls.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: {name}\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await?;
    let mut out = Vec::new();
    let _ = tls.read_to_end(&mut out).await;
    let text = String::from_utf8_lossy(&out).into_owned();
    Ok(text.split("\r\n\r\n").next().unwrap_or_default().to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_web_app_serves_https_on_the_lan_with_the_hubs_office_certificate() {
    htx_tests::init_crypto();
    let hub = TestHub::start().await;
    let root = tempfile::TempDir::new().unwrap();
    let dir = root.path().join("node");
    hub.init_node_dir("359", "vu-ban", &dir).await;
    let hub_dir = hub.dir().to_str().unwrap().to_owned();
    let file = root.path().join("vu-ban-web.json");

    // Only LAN names, and only for an enrolled node.
    for (names, why) in [
        (vec!["8.8.8.8"], "không phải địa chỉ mạng nội bộ"),
        (vec!["vuban.gov.vn"], "không phải tên trong mạng nội bộ"),
    ] {
        let mut args = vec!["web-cert", &hub_dir, "--node", "vu-ban", "--out"];
        let out = file.to_str().unwrap();
        args.push(out);
        for n in &names {
            args.extend(["--name", n]);
        }
        let r = run("htx-hub", &args).await;
        assert!(r.failed().contains(why), "{names:?}: {r:#?}");
    }
    let r = run(
        "htx-hub",
        &[
            "web-cert",
            &hub_dir,
            "--node",
            "no-such-node",
            "--name",
            "127.0.0.1",
            "--out",
            file.to_str().unwrap(),
        ],
    )
    .await;
    r.failed();
    assert!(!file.exists(), "nothing written for a refusal");

    // A LAN address without a certificate: refused, in words.
    configure(&dir, |c| c.web_listen = "0.0.0.0:0".into());
    let r = run_within(
        Duration::from_secs(30),
        "htx-node",
        &["run".as_ref(), dir.as_os_str()],
    )
    .await;
    let err = r.failed();
    assert!(
        err.contains("no HTTPS certificate is installed")
            && err.contains("chưa cài chứng chỉ HTTPS"),
        "{err}"
    );

    // Issued, installed, served.
    run(
        "htx-hub",
        &[
            "web-cert",
            &hub_dir,
            "--node",
            "vu-ban",
            "--name",
            "127.0.0.1",
            "--name",
            "vu-ban.lan",
            "--out",
            file.to_str().unwrap(),
        ],
    )
    .await
    .ok();
    let id: WebIdentity = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    assert_eq!(id.names, ["127.0.0.1", "vu-ban.lan"]);
    assert_eq!(
        id.ca_cert,
        std::fs::read_to_string(hub.dir().join("web-ca.pem")).unwrap()
    );
    assert_ne!(
        id.ca_cert,
        std::fs::read_to_string(hub.dir().join("ca.pem")).unwrap(),
        "not the sync CA"
    );
    run(
        "htx-node",
        &["web-cert".as_ref(), dir.as_os_str(), file.as_os_str()],
    )
    .await
    .ok();
    let mut process = spawn(
        "htx-node",
        &["run".as_ref(), dir.as_os_str()],
        &root.path().join("node.log"),
    );
    let addr = wait_for_api(&dir.join("web.addr"), Duration::from_secs(30)).await;
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], addr.port()));
    let head = get_tls(&id.ca_cert, addr, "127.0.0.1", "/login")
        .await
        .expect("TLS handshake");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let cookie = head
        .lines()
        .find(|l| l.to_ascii_lowercase().starts_with("set-cookie:"))
        .expect("a session cookie");
    assert!(
        cookie.contains("Secure") && cookie.contains("HttpOnly"),
        "{cookie}"
    );
    // The LAN name in the certificate works too.
    let head = get_tls(&id.ca_cert, addr, "vu-ban.lan", "/login")
        .await
        .expect("by name");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    // A name not in it, and a client that does not trust the office CA: no handshake.
    assert!(
        get_tls(&id.ca_cert, addr, "other.lan", "/login")
            .await
            .is_err()
    );
    let sync_ca = std::fs::read_to_string(hub.dir().join("ca.pem")).unwrap();
    assert!(
        get_tls(&sync_ca, addr, "127.0.0.1", "/login")
            .await
            .is_err()
    );
    // Plain HTTP to the same port: no page, no cookie.
    let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    tcp.write_all(b"GET /login HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), tcp.read_to_end(&mut buf)).await;
    let text = String::from_utf8_lossy(&buf);
    assert!(
        !text.contains("200 OK") && !text.contains("htx_session"),
        "{text}"
    );
    process.terminate().await;

    // A certificate for another node is not installed.
    run(
        "htx-hub",
        &[
            "enroll",
            &hub_dir,
            "--unit",
            "356",
            "--name",
            "nam-dinh",
            "--out",
            root.path().join("b.json").to_str().unwrap(),
        ],
    )
    .await
    .ok();
    let other = root.path().join("other-web.json");
    run(
        "htx-hub",
        &[
            "web-cert",
            &hub_dir,
            "--node",
            "nam-dinh",
            "--name",
            "192.168.1.20",
            "--out",
            other.to_str().unwrap(),
        ],
    )
    .await
    .ok();
    let r = run(
        "htx-node",
        &["web-cert".as_ref(), dir.as_os_str(), other.as_os_str()],
    )
    .await;
    assert!(r.failed().contains("cấp cho nút khác"), "{r:#?}");

    // Plain HTTP on the LAN only when chosen, and then it says so.
    std::fs::remove_file(dir.join("web-tls.json")).unwrap();
    configure(&dir, |c| c.web_plain_http = true);
    let mut process = spawn(
        "htx-node",
        &["run".as_ref(), dir.as_os_str()],
        &root.path().join("plain.log"),
    );
    let addr = wait_for_api(&dir.join("web.addr"), Duration::from_secs(30)).await;
    let r = htx_tests::web::http::request(
        std::net::SocketAddr::from(([127, 0, 0, 1], addr.port())),
        "GET",
        "/login",
        None,
        b"",
    )
    .await;
    assert_eq!(r.status, 200);
    process.terminate().await;
    let log = std::fs::read_to_string(root.path().join("plain.log")).unwrap();
    assert!(log.contains("passwords travel in clear"), "{log}");
}

#[test]
fn the_office_web_ca_vouches_only_for_lan_names() {
    htx_tests::init_crypto();
    for ok in [
        "192.168.1.10",
        "10.0.0.7",
        "172.20.1.1",
        "fd00::5",
        "vu-ban.lan",
        "pc-01.hoi.local",
        "x.home.arpa",
    ] {
        assert!(pki::check_office_name(ok).is_ok(), "{ok}");
    }
    for bad in [
        "8.8.8.8",
        "172.32.0.1",
        "google.com",
        "vu-ban",
        "lan.example.com",
        "a..lan",
        "-x.lan",
        "2001:db8::1",
    ] {
        assert!(pki::check_office_name(bad).is_err(), "{bad}");
    }
    // Even a certificate the CA was made to sign for a public site is
    // refused by a client that trusts the CA: the constraint is in the CA.
    let ca = pki::new_web_ca("Office web CA", 10).unwrap();
    let forged = pki::issue(
        "Office web CA",
        &ca.key_pem,
        "forged",
        pki::Role::Server(&["www.example.com".to_owned()]),
        time::Duration::days(1),
    )
    .unwrap();
    let fine = pki::issue_web(
        "Office web CA",
        &ca.key_pem,
        "vu-ban",
        &["vu-ban.lan".to_owned()],
        time::Duration::days(1),
    )
    .unwrap();
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(ca.cert_pem.as_bytes()).unwrap())
        .unwrap();
    let verifier = rustls::client::WebPkiServerVerifier::builder_with_provider(
        Arc::new(roots),
        Arc::new(rustls::crypto::ring::default_provider()),
    )
    .build()
    .unwrap();
    let check = |pem: &str, name: &str| {
        let leaf = CertificateDer::from_pem_slice(pem.as_bytes()).unwrap();
        verifier.verify_server_cert(
            &leaf,
            &[],
            &ServerName::try_from(name.to_owned()).unwrap(),
            &[],
            rustls::pki_types::UnixTime::now(),
        )
    };
    use rustls::client::danger::ServerCertVerifier;
    assert!(check(&fine.cert_pem, "vu-ban.lan").is_ok());
    let refused = check(&forged.cert_pem, "www.example.com");
    assert!(
        refused.is_err(),
        "a public name under the office CA: {refused:?}"
    );
}
