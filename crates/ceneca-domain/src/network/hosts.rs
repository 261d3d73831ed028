//! What "internal" means: the one definition every check uses — the zero-sync edition's
//! refusal of configured URLs, the egress connector's check of resolved addresses, and the
//! scanner of stored text ([`super::references`]).
//!
//! Hosts are read the way real clients read them (the WHATWG URL standard, through the
//! `url` crate): an IPv4 address written as one decimal, octal or hex number
//! (`http://134744072/` is 8.8.8.8) or in a mixed form is an address, not a dotless
//! internal name; IDNA names are compared in their ASCII form; a trailing dot is the same
//! name; the host of `http://api.openai.com\@10.0.0.1/` is `api.openai.com`, as a browser
//! connects to it. So a check and a connection cannot disagree about where a URL goes.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;
use url::Host;

/// Networks that are internal unless configuration says otherwise: loopback, RFC 1918,
/// RFC 4193 (unique local IPv6), and the unspecified addresses (a connection to
/// `0.0.0.0` reaches this machine).
const BUILTIN_NETWORKS: &[&str] = &[
    "127.0.0.0/8",
    "10.0.0.0/8",
    "172.16.0.0/12",
    "192.168.0.0/16",
    "0.0.0.0/32",
    "::1/128",
    "::/128",
    "fc00::/7",
];

/// Networks that are never internal, whatever is configured: link-local addresses, where
/// cloud metadata services answer (169.254.169.254 hands out credentials).
const NEVER_INTERNAL: &[&str] = &["169.254.0.0/16", "fe80::/10"];

/// Names of cloud metadata services (they resolve to link-local addresses): never
/// internal, whatever suffix they end in.
const NEVER_INTERNAL_NAMES: &[&str] = &[
    "metadata.google.internal",
    "metadata.goog",
    "metadata",
    "instance-data",
    "instance-data.ec2.internal",
    "metadata.azure.internal",
];

/// Name suffixes that cannot be public: special-use names (RFC 6761, RFC 6762, RFC 8375)
/// and the ones reserved for private use (`.internal`, ICANN 2024), and `.lan`, which
/// home and office routers hand out.
const BUILTIN_SUFFIXES: &[&str] = &["localhost", "internal", "local", "lan", "home.arpa"];

/// The hosts and networks of the deployment's own network.
#[derive(Debug, Clone, PartialEq)]
pub struct InternalHosts {
    /// Lower-case ASCII suffixes, without a leading dot: `corp.example.com` covers that
    /// name and every name under it.
    suffixes: Vec<String>,
    networks: Vec<IpNet>,
}

impl Default for InternalHosts {
    fn default() -> Self {
        Self {
            suffixes: BUILTIN_SUFFIXES.iter().map(|s| (*s).to_owned()).collect(),
            networks: BUILTIN_NETWORKS
                .iter()
                .map(|n| n.parse().expect("built-in networks parse"))
                .collect(),
        }
    }
}

impl InternalHosts {
    /// The built-in definition widened by configured entries (`internal_hosts`): each a
    /// CIDR (`10.20.0.0/16`), an address (`100.64.1.2`) or a domain suffix
    /// (`corp.example.com`, `.corp`). An entry that would make link-local addresses
    /// internal, or that is not one of these forms, is refused with the reason.
    pub fn with_configured<S: AsRef<str>>(entries: &[S]) -> Result<Self, String> {
        let mut hosts = Self::default();
        for entry in entries {
            let entry = entry.as_ref().trim();
            if entry.is_empty() {
                continue;
            }
            if let Some(network) = parse_network(entry) {
                if let Some(never) = never_internal().find(|n| overlaps(n, &network)) {
                    return Err(format!(
                        "'{entry}' overlaps {never}, link-local addresses (cloud metadata \
                         services), which are never internal"
                    ));
                }
                hosts.networks.push(network);
                continue;
            }
            let suffix = entry.trim_start_matches('.').trim_end_matches('.');
            match Host::parse(suffix) {
                Ok(Host::Domain(ascii)) if !ascii.is_empty() && !ascii.contains('*') => {
                    hosts.suffixes.push(ascii)
                }
                _ => {
                    return Err(format!(
                        "'{entry}' is neither a network (10.20.0.0/16), an address nor a \
                         domain suffix (corp.example.com)"
                    ));
                }
            }
        }
        Ok(hosts)
    }

    /// Whether a connection to `ip` stays inside the network. IPv4-mapped IPv6 addresses
    /// (`::ffff:8.8.8.8`) are judged as the IPv4 address they carry.
    pub fn is_internal_ip(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        if never_internal().any(|n| n.contains(&ip)) {
            return false;
        }
        self.networks.iter().any(|n| n.contains(&ip))
    }

    /// Whether a domain name (lower-case ASCII, as [`Host::parse`] gives it) is internal:
    /// a built-in or configured suffix; a single label (`ollama`, `postgres`: the service
    /// names of a compose file or a cluster) that is not itself a top-level domain
    /// (`http://ai./`); or a name under a top-level domain that does not exist in public
    /// DNS (`.corp`, `.svc`, `.test`: only a private resolver can answer it). Cloud
    /// metadata names never are.
    pub fn is_internal_domain(&self, name: &str) -> bool {
        let name = name.trim_end_matches('.');
        if name.is_empty()
            || NEVER_INTERNAL_NAMES
                .iter()
                .any(|n| name == *n || name.strip_suffix(n).is_some_and(|r| r.ends_with('.')))
        {
            return false;
        }
        let tld = name.rsplit('.').next().unwrap_or(name);
        let public_tld = psl::suffix(tld.as_bytes()).is_some_and(|s| s.typ().is_some());
        if !name.contains('.') {
            return !public_tld;
        }
        if !public_tld {
            return true;
        }
        self.suffixes.iter().any(|suffix| {
            name == suffix
                || name
                    .strip_suffix(suffix.as_str())
                    .is_some_and(|rest| rest.ends_with('.'))
        })
    }

    /// Whether a parsed host is internal.
    pub fn is_internal(&self, host: &Host<String>) -> bool {
        match host {
            Host::Domain(name) => self.is_internal_domain(name),
            Host::Ipv4(ip) => self.is_internal_ip(IpAddr::V4(*ip)),
            Host::Ipv6(ip) => self.is_internal_ip(IpAddr::V6(*ip)),
        }
    }

    /// Checks that a configured or stored URL points inside the network; the error names
    /// the host it found. Every reading of the URL a client might use is checked (see
    /// [`url_hosts`]), so none can reach outside.
    pub fn check_url(&self, url: &str) -> Result<(), String> {
        let hosts = url_hosts(url)?;
        match hosts.iter().find(|h| !self.is_internal(h)) {
            None => Ok(()),
            Some(host) => Err(format!("'{host}' is not an internal host")),
        }
    }
}

/// The hosts a URL may lead to. The WHATWG reading (what browsers, `reqwest` and most
/// clients connect to) and, where it differs, the RFC 3986 reading (userinfo up to the
/// last `@` before the first `/`, a backslash being an ordinary character), both with
/// hosts parsed as WHATWG does (numeric IPv4 forms, IDNA). A URL without a host (a
/// `file:` path, `mailto:`) has none; one that cannot be parsed is an error.
pub fn url_hosts(url: &str) -> Result<Vec<Host<String>>, String> {
    let url = url.trim();
    let (scheme, rest) = url
        .split_once("://")
        .ok_or_else(|| format!("'{url}' is not a URL with a host (scheme://host)"))?;
    if scheme.is_empty()
        || !scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
    {
        return Err(format!("'{url}' does not start with a scheme"));
    }
    let mut hosts = Vec::with_capacity(2);
    // Special schemes get the WHATWG reading of their own; any other scheme is read as if
    // it were http, so its host is parsed as a client that treats it as a network
    // address would (non-special schemes keep hosts opaque).
    let whatwg = url::Url::parse(&format!("http://{rest}"))
        .map_err(|e| format!("'{url}' is not a valid URL: {e}"))?;
    if let Some(host) = whatwg.host() {
        hosts.push(host.to_owned());
    }
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host_port = authority.rsplit('@').next().unwrap_or("");
    let host = if let Some(v6) = host_port.strip_prefix('[') {
        format!("[{}]", v6.split(']').next().unwrap_or(""))
    } else {
        host_port.split(':').next().unwrap_or("").to_owned()
    };
    if host.is_empty() {
        if !hosts.is_empty() {
            // `https:///evil.example/`: a browser skips the extra slashes and goes to the
            // host after them, another client finds no host at all.
            return Err(format!("'{url}' has no host where one is expected"));
        }
    } else {
        let host = Host::parse(&host).map_err(|e| format!("'{url}' has an invalid host: {e}"))?;
        if !hosts.contains(&host) {
            hosts.push(host);
        }
    }
    Ok(hosts)
}

/// Parses a host the way WHATWG does: `134744072` and `0x8.8.8.8` are 8.8.8.8, IDNA
/// names come back in ASCII, `[::1]` is an IPv6 address.
pub fn parse_host(text: &str) -> Result<Host<String>, url::ParseError> {
    Host::parse(text.trim_end_matches('.'))
}

/// Whether `text` is a domain name (not an address), in any case, with or without a
/// leading or trailing dot.
pub fn is_domain_name(text: &str) -> bool {
    matches!(
        Host::parse(text.trim().trim_matches('.')),
        Ok(Host::Domain(name)) if !name.is_empty() && !name.contains(['*', '/', ':'])
    )
}

fn parse_network(entry: &str) -> Option<IpNet> {
    if let Ok(net) = entry.parse::<IpNet>() {
        return Some(net.trunc());
    }
    match entry.parse::<IpAddr>() {
        Ok(ip) => Some(IpNet::from(ip)),
        Err(_) => None,
    }
}

fn never_internal() -> impl Iterator<Item = IpNet> {
    NEVER_INTERNAL
        .iter()
        .map(|n| n.parse().expect("built-in networks parse"))
}

fn overlaps(a: &IpNet, b: &IpNet) -> bool {
    a.contains(&b.network()) || b.contains(&a.network())
}

/// An IPv4-mapped IPv6 address as the IPv4 address it carries (the kernel connects it
/// over IPv4); any other address as it is.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(v6),
        },
        v4 => v4,
    }
}

/// An address as text for messages.
pub fn describe(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => Ipv4Addr::to_string(&v4),
        IpAddr::V6(v6) => format!("[{}]", Ipv6Addr::to_string(&v6)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn internal(url: &str) -> bool {
        InternalHosts::default().check_url(url).is_ok()
    }

    #[test]
    fn builtin_internal_hosts() {
        for url in [
            "http://localhost:11434",
            "http://app.localhost/",
            "https://10.1.2.3/v1",
            "http://172.31.255.255",
            "https://192.168.1.5",
            "http://[::1]:80",
            "http://[fd12:3456::1]/",
            "https://llm.internal",
            "https://llm.internal.",
            "http://ollama:11434",
            "http://printer.local",
            "http://nas.lan",
            "http://box.home.arpa",
            "postgres://ceneca@127.0.0.1:5432/db",
            "http://0.0.0.0:8080",
            "http://[::ffff:10.0.0.1]/",
        ] {
            assert!(internal(url), "{url}");
        }
    }

    #[test]
    fn external_hosts_in_every_spelling() {
        for url in [
            "https://api.openai.com/v1",
            "https://API.OpenAI.com./v1",
            "https://8.8.8.8",
            // One number, hex, octal and mixed forms of 8.8.8.8: addresses, not names.
            "http://134744072/",
            "http://0x08080808/",
            "http://010.010.010.010/",
            "http://0x8.8.0x8.010/",
            "http://8.526344/",
            // The host a client connects to is before the backslash.
            "http://api.openai.com\\@10.0.0.1/",
            // And the one an RFC 3986 client connects to is after the last @.
            "http://10.0.0.1@8.8.8.8/",
            "http://[::ffff:8.8.8.8]/",
            "http://[2001:4860:4860::8888]/",
            // Link-local: cloud metadata.
            "http://169.254.169.254/latest/meta-data",
            "http://[fe80::1]/",
            // IDNA: the Unicode name is the public punycode one.
            "https://bücher.de/",
            "https://xn--bcher-kva.de/",
            "redis://cache.example.com:6379",
            "s3+http://bucket.example.com/",
        ] {
            assert!(!internal(url), "{url}");
        }
    }

    #[test]
    fn configured_suffixes_and_networks_widen_the_definition() {
        let hosts = InternalHosts::with_configured(&["corp.example.com", ".acme", "100.64.0.0/10"])
            .unwrap();
        for url in [
            "https://corp.example.com",
            "https://llm.corp.example.com/v1",
            "http://x.acme/",
            "http://100.100.1.1/",
        ] {
            assert!(hosts.check_url(url).is_ok(), "{url}");
        }
        for url in ["https://notcorp.example.com", "https://example.com"] {
            assert!(hosts.check_url(url).is_err(), "{url}");
        }
    }

    #[test]
    fn link_local_cannot_be_configured_internal() {
        for entry in [
            "169.254.0.0/16",
            "169.254.169.254",
            "169.0.0.0/8",
            "fe80::/64",
        ] {
            let err = InternalHosts::with_configured(&[entry]).unwrap_err();
            assert!(err.contains("link-local"), "{entry}: {err}");
        }
        assert!(InternalHosts::with_configured(&["not a host!"]).is_err());
    }

    #[test]
    fn urls_without_a_host_part_are_refused() {
        assert!(
            InternalHosts::default()
                .check_url("api.openai.com")
                .is_err()
        );
        assert!(InternalHosts::default().check_url("://x").is_err());
    }
}
