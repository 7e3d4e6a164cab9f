//! # Checks shared by the node's and the hub's settings
//!
//! Plain text checks with bilingual errors naming the field; each binary's
//! config `validate()` calls them at load.

/// Checks an address to listen on: `HOST:PORT`, as the listener takes it.
pub fn check_listen(field: &str, addr: &str) -> Result<(), String> {
    let port_ok = addr
        .rsplit_once(':')
        .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok());
    if port_ok {
        Ok(())
    } else {
        Err(format!(
            "{field} = {addr:?}: not an address of the form HOST:PORT / {field} không phải địa chỉ dạng máy:cổng"
        ))
    }
}

/// The local APIs are not authenticated: they may listen on loopback only.
pub fn check_loopback(field: &str, addr: &str) -> Result<(), String> {
    check_listen(field, addr)?;
    let host = addr.rsplit_once(':').map(|(h, _)| h).unwrap_or_default();
    let loopback = host == "localhost"
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    if loopback {
        Ok(())
    } else {
        Err(format!(
            "{field} = {addr:?}: must be a loopback address (127.0.0.1, [::1] or localhost); this API has no authentication / {field} chỉ được nghe trên địa chỉ nội bộ (loopback)"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_checked() {
        for ok in ["127.0.0.1:0", "[::1]:7000", "localhost:8080"] {
            check_loopback("api_listen", ok).unwrap();
        }
        for bad in [
            "0.0.0.0:0",
            "10.0.0.5:80",
            "example.org:80",
            "127.0.0.1",
            ":80",
        ] {
            let e = check_loopback("api_listen", bad).unwrap_err();
            assert!(e.contains("api_listen") && e.contains(" / "), "{e}");
        }
        check_listen("listen", "0.0.0.0:7443").unwrap();
        check_listen("listen", "hub.example:7443").unwrap();
        assert!(check_listen("listen", "0.0.0.0:99999").is_err());
    }
}
