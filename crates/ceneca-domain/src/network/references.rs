//! Finding references to the outside world in text a client wants stored: the zero-sync
//! edition's promise that nothing stored points outside the network (and an opt-in
//! policy in the enterprise edition).
//!
//! What counts as a reference:
//! - a URL of any scheme with a host (`https://`, `ftp://`, `redis://`) whose host, read
//!   as clients read it ([`super::hosts::url_hosts`]: userinfo, backslashes, tabs and line
//!   breaks inside the host), is not internal; the lenient forms WHATWG parsers accept
//!   (`https:/host`, `https:\\host`, `https:host`, scheme-relative `//host`, UNC
//!   `\\\\host`) when the host is public; cloud storage schemes (`s3://`, `gs://`, ...)
//!   whatever the host;
//! - an IP address of a non-internal network: dotted IPv4 (as a resolver reads it, so
//!   `010.010.010.010` is 8.8.8.8), IPv6, IPv4-mapped IPv6; after a command that connects,
//!   any notation (`ping 134744072`, `ssh root@0x08080808`); bare numbers in prose are
//!   numbers, netmasks and `1.0.0.0`-style versions are not hosts;
//! - a host name under a public suffix (the Public Suffix List) *written as a host*:
//!   followed by a path, query or port, starting with `www.`, after a command or a setting
//!   that connects (`curl`, `psql -h`, `fetch(`, `ssh user@`, `DB_HOST=`, `"host": "`), as
//!   a link target (`](`, `href=`), or on the list of known AI, cloud, tunnel and
//!   request-catcher domains, which count wherever they appear.
//!
//! So ordinary prose passes: version numbers (`1.2.3`, `v8.8.8`), file names
//! (`README.md`, `setup.py`, `main.rs:42`), abbreviations (`e.g.`, `node.js`), internal
//! URLs and e-mail addresses.
//!
//! Text is scanned twice ([`normalise`]): as a client reads it (NFKC, invisible
//! characters removed, lower case; a URL is parsed before anything in it is decoded, so
//! `https://localhost%2F@evil.example` goes to evil.example), and with every disguise
//! removed (escapes decoded several layers deep, defanged dots restored).
//!
//! Every step is linear in the text: the `regex` crate's automata never backtrack, look-
//! behind is a bounded window, and decoding makes a fixed number of passes.

use std::borrow::Cow;
use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::LazyLock;

use aho_corasick::AhoCorasick;
use regex::Regex;
use serde_json::Value as Json;
use url::Host;

use super::hosts::{InternalHosts, describe};

/// Service domains that count as references wherever they appear, host-like or not: the
/// major AI providers, clouds, code and paste hosts, tunnels. `internal_hosts` cannot make
/// them internal; `external_service_domains` adds to them.
pub const KNOWN_SERVICE_DOMAINS: &[&str] = &[
    // AI providers and model hubs.
    "openai.com",
    "chatgpt.com",
    "anthropic.com",
    "claude.ai",
    "cohere.ai",
    "cohere.com",
    "mistral.ai",
    "huggingface.co",
    "hf.co",
    "replicate.com",
    "together.ai",
    "together.xyz",
    "groq.com",
    "perplexity.ai",
    "deepseek.com",
    "x.ai",
    "fireworks.ai",
    "openrouter.ai",
    "ai21.com",
    "voyageai.com",
    "gemini.google.com",
    "generativelanguage.googleapis.com",
    // Clouds.
    "googleapis.com",
    "googleusercontent.com",
    "cloud.google.com",
    "amazonaws.com",
    "aws.amazon.com",
    "azure.com",
    "windows.net",
    "azurewebsites.net",
    "cloudflare.com",
    "workers.dev",
    "pages.dev",
    "vercel.app",
    "netlify.app",
    "herokuapp.com",
    "firebaseio.com",
    "supabase.co",
    "pinecone.io",
    "qdrant.io",
    "weaviate.io",
    // Code, files and paste hosts; tunnels.
    "github.com",
    "githubusercontent.com",
    "gitlab.com",
    "bitbucket.org",
    "pastebin.com",
    "dropbox.com",
    "drive.google.com",
    "ngrok.io",
    "ngrok-free.app",
    "ngrok.app",
    "ngrok.dev",
    "trycloudflare.com",
    "loca.lt",
    "localtunnel.me",
    "serveo.net",
    // Request catchers and out-of-band testing hosts: where exfiltration goes.
    "webhook.site",
    "requestbin.com",
    "pipedream.net",
    "beeceptor.com",
    "interact.sh",
    "oast.fun",
    "oast.pro",
    "oast.live",
    "burpcollaborator.net",
    "transfer.sh",
    "file.io",
    // Chat and messaging services with webhooks.
    "slack.com",
    "hooks.slack.com",
    "discord.com",
    "discordapp.com",
    "telegram.org",
];

/// URL schemes that always name somewhere outside: cloud object stores.
const CLOUD_SCHEMES: &[&str] = &[
    "s3", "s3a", "s3n", "gs", "gcs", "az", "abfs", "abfss", "wasb", "wasbs", "adl", "oss", "cos",
    "r2",
];

/// Top-level domains that are also common file extensions: `name.md:12` and `main.rs:42`
/// are a file and a line, not a host and a port.
const FILE_LIKE_TLDS: &[&str] = &[
    "md", "py", "rs", "sh", "zip", "mov", "pl", "pm", "cc", "so", "ml", "ps", "java", "mk", "tf",
    "pt", "cu", "ac", "am", "gd", "sv", "pro", "sc", "st", "mp", "cv",
];

/// Product names spelled like hosts, followed by a slash in prose (`ASP.NET/MVC`).
const PRODUCT_NAMES: &[&str] = &["asp.net", "ado.net", "vb.net", "socket.io", "date.now"];

/// How many characters before a host name are searched for a command that connects.
const COMMAND_WINDOW: usize = 256;

/// How much of the text after a URL's start is read to find its host.
const MAX_URL_SCAN: usize = 512;

/// What kind of reference was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReferenceKind {
    Url,
    IpAddress,
    HostName,
}

impl ReferenceKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ReferenceKind::Url => "a URL",
            ReferenceKind::IpAddress => "an IP address",
            ReferenceKind::HostName => "a host name",
        }
    }
}

/// One reference found: its kind and the host or address it points to (never the text
/// around it, which may be confidential).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExternalReference {
    pub kind: ReferenceKind,
    pub host: String,
}

impl std::fmt::Display for ExternalReference {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "refers outside the network: {} to '{}'",
            self.kind.as_str(),
            self.host
        )
    }
}

/// The scanner, with the deployment's definition of internal.
#[derive(Debug, Clone)]
pub struct ReferenceScanner {
    internal: InternalHosts,
    /// Lower-case ASCII domains: [`KNOWN_SERVICE_DOMAINS`] and configured ones.
    known: HashSet<String>,
    /// The length of the longest of them.
    known_max_len: usize,
    /// Whether any of them is a single label (a configured one: the built-in ones all
    /// have a dot).
    known_single_labels: bool,
}

impl Default for ReferenceScanner {
    fn default() -> Self {
        Self::new(InternalHosts::default(), &[] as &[&str])
    }
}

/// The start of a URL: a scheme and its colon (what follows is checked by the scheme:
/// special schemes take any number of slashes or backslashes, as WHATWG parsers do), or a
/// scheme-relative `//` or UNC `\\`.
static URL_START: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?P<scheme>[a-z][a-z0-9+.\-]{0,30}):(?P<slashes>[/\\]*)|(?P<relative>[/\\]{2})")
        .expect("regex")
});
static IPV4: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}").expect("regex"));
static IPV6: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"\[?(?:[0-9a-f]{0,4}:){2,7}(?:[0-9a-f]{1,4}|[0-9]{1,3}(?:\.[0-9]{1,3}){3})?\]?")
        .expect("regex")
});
/// A host name: labels and a dot, then a top-level label. The definition; the scan runs
/// [`domain_matches`], which finds the same matches faster.
#[cfg(test)]
static DOMAIN: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"(?:[\p{Alphabetic}\p{Nd}](?:[\p{Alphabetic}\p{Nd}_\-]{0,62}[\p{Alphabetic}\p{Nd}])?\.)+(?:[\p{Alphabetic}][\p{Alphabetic}\p{Nd}\-]{0,61}[\p{Alphabetic}\p{Nd}]|xn--[a-z0-9\-]{1,59})",
    )
    .expect("regex")
});
/// [`DOMAIN`] for ASCII text: its classes cut to ASCII.
static DOMAIN_ASCII: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"(?:[a-zA-Z0-9](?:[a-zA-Z0-9_\-]{0,62}[a-zA-Z0-9])?\.)+(?:[a-zA-Z][a-zA-Z0-9\-]{0,61}[a-zA-Z0-9]|xn--[a-z0-9\-]{1,59})",
    )
    .expect("regex")
});
/// [`DOMAIN`] over a text's classes ([`char_classes`]: `a` alphabetic, `0` a decimal
/// digit, `_`, `-` and `.` themselves). Its `xn--` alternative is left out: wherever it
/// could match, the first alternative (a letter, then letters, digits or hyphens, ending
/// in a letter or digit) matches `xn` already and is preferred.
static DOMAIN_CLASSES: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?:[a0](?:[a0_\-]{0,62}[a0])?\.)+a[a0\-]{0,61}[a0]").expect("regex")
});
/// The Unicode classes [`DOMAIN`] names, as the `regex` crate defines them.
static ALPHABETIC_AND_DIGITS: LazyLock<[Vec<(char, char)>; 2]> = LazyLock::new(|| {
    [r"\p{Alphabetic}", r"\p{Nd}"].map(|class| {
        match regex_syntax::Parser::new()
            .parse(class)
            .map(|h| h.into_kind())
        {
            Ok(regex_syntax::hir::HirKind::Class(regex_syntax::hir::Class::Unicode(c))) => {
                c.ranges().iter().map(|r| (r.start(), r.end())).collect()
            }
            _ => unreachable!("a Unicode class"),
        }
    })
});
/// The value of a decimal digit of any script (`٣`, `३`, `৩` are 3): Unicode encodes each
/// script's digits as a run of ten, zero first, so the value is the distance from the
/// start of the run, modulo ten (runs that touch are merged into one range). `None` for
/// anything that is not a decimal digit.
pub(crate) fn decimal_digit(c: char) -> Option<u32> {
    let digits = &ALPHABETIC_AND_DIGITS[1];
    let i = digits.partition_point(|&(_, hi)| hi < c);
    let &(lo, hi) = digits.get(i)?;
    (lo <= c && c <= hi).then(|| (c as u32 - lo as u32) % 10)
}

/// Commands, calls and settings that connect to the host after them. Words that are also
/// ordinary English (`ping`, `dig`, `host`) count only where a shell command starts (line
/// start, `$`, a backtick, `;`, `&&`, `|`, `(`); calls only with their parenthesis.
static COMMAND: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r#"(?:(?:^|[\s$`;&|('"/\\])(?:sudo\s+)?(?:curl|wget|nc|ncat|netcat|ssh|scp|sftp|ftp|telnet|nslookup|traceroute|tracert|rsync|mosh|git\s+clone|git\s+remote\s+add\s+\S+|invoke-webrequest|invoke-restmethod|iwr|irm|test-netconnection|tnc|docker\s+(?:login|pull|push)|podman\s+(?:login|pull|push)|xfreerdp|rdesktop|vncviewer|openssl\s+s_client|http|https|xh)(?:\.exe)?\s)|(?:(?:^|[$`;&|(]\s*)(?:sudo\s+)?(?:ping|ping6|dig|host|whois|mtr)\s)|(?:(?:psql|mysql|mariadb|redis-cli|mongo|mongosh|pg_dump|pg_restore|clickhouse-client|cqlsh)(?-u:\b)[^\n]*\s(?:-h|--host(?:=|\s)|-s|--server))|(?:/v:)|(?:(?:fetch|requests\.[a-z]+|httpx\.[a-z]+|http\.[a-z]+|https\.[a-z]+|axios(?:\.[a-z]+)?|urlopen|urllib\.request\.urlopen|new\s+websocket|eventsource|xmlhttprequest|\.open|create_connection|smtplib\.smtp(?:_ssl)?|ftplib\.ftp|socket\.connect|net\.connect|tls\.connect|dial|connect)\s*\()|\]\(|(?:href|src|action|data|srcset|poster|formaction|url)\s*=|url\s*\("#,
    )
    .expect("regex")
});

/// What comes just before a host: a command that is also an English word (`ejecuta ping
/// ejemplo.es`, `dig +short example.org`, not `ping me at example.org`), or a setting
/// that names a host (`DB_HOST=`, `host:`, `"host": "`, `HostName`, `upstream = "`).
static COMMAND_JUST_BEFORE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r#"(?:(?:^|[^a-z0-9_.\-])(?:ping6?|dig|whois|mtr|traceroute)\s+(?:[-+][a-z0-9\-]+(?:[ =][0-9]+)?\s+)*$)|(?:(?:^|[^a-z0-9_])["']?(?:[a-z0-9_\-]*host(?:name)?|[a-z0-9_\-]*server|endpoint|upstream|proxy|remote|origin|[a-z0-9_\-]*_?url|[a-z0-9_\-]*_?uri|base_?url|api_?base|address|addr)["']?\s*(?:[:=]|\s)\s*["']?$)"#,
    )
    .expect("regex")
});

/// Words one of which every match of [`COMMAND`] or [`COMMAND_JUST_BEFORE`] contains
/// (each alternative of either pattern holds one of them; a test checks it): where none
/// occurs, neither pattern can match.
static COMMAND_WORDS: LazyLock<AhoCorasick> = LazyLock::new(|| {
    AhoCorasick::new([
        // Commands (`nc` is in `ncat`, `rsync`, `tnc`, `vncviewer`; `ftp` in `sftp`,
        // `ftplib`; `http` in `https`, `httpx`, `xmlhttprequest`).
        "curl",
        "wget",
        "nc",
        "netcat",
        "ssh",
        "scp",
        "ftp",
        "telnet",
        "nslookup",
        "tracer",
        "mosh",
        "git",
        "invoke-",
        "iwr",
        "irm",
        "test-",
        "docker",
        "podman",
        "xfreerdp",
        "rdesktop",
        "openssl",
        "http",
        "xh",
        "ping",
        "dig",
        "host",
        "whois",
        "mtr",
        // Database clients.
        "psql",
        "mysql",
        "mariadb",
        "redis-cli",
        "mongo",
        "pg_dump",
        "pg_restore",
        "clickhouse-client",
        "cqlsh",
        "/v:",
        // Calls (`connect` is in `create_connection`, `socket.connect`).
        "fetch",
        "requests",
        "axios",
        "urlopen",
        "websocket",
        "eventsource",
        ".open",
        "connect",
        "smtplib",
        "dial",
        // Links and attributes.
        "](",
        "href",
        "src",
        "action",
        "data",
        "poster",
        "url",
        // Settings that name a host.
        "server",
        "endpoint",
        "upstream",
        "proxy",
        "remote",
        "origin",
        "uri",
        "base",
        "addr",
    ])
    .expect("command words")
});

/// Where the [`COMMAND_WORDS`] occur in one text (overlapping occurrences too), found in
/// one pass: whether a window before a host name holds one is then a binary search, not a
/// search of the window (which, for every host name of a long text, adds up).
struct CommandWords {
    /// The ends of the occurrences, in order.
    ends: Vec<usize>,
    /// For each occurrence, the greatest start among it and those before it.
    max_start: Vec<usize>,
}

impl CommandWords {
    fn new(text: &str) -> Self {
        let (mut ends, mut max_start) = (Vec::new(), Vec::new());
        for m in COMMAND_WORDS.find_overlapping_iter(text) {
            ends.push(m.end());
            max_start.push(
                max_start
                    .last()
                    .map_or(m.start(), |&s: &usize| s.max(m.start())),
            );
        }
        Self { ends, max_start }
    }

    /// Whether a word lies wholly within `text[from..to]`.
    fn within(&self, from: usize, to: usize) -> bool {
        let n = self.ends.partition_point(|&end| end <= to);
        n > 0 && self.max_start[n - 1] >= from
    }
}

impl ReferenceScanner {
    /// A scanner with `internal` as the network, and `extra_known` domains counted as
    /// references wherever they appear.
    pub fn new<S: AsRef<str>>(internal: InternalHosts, extra_known: &[S]) -> Self {
        let mut known: HashSet<String> = KNOWN_SERVICE_DOMAINS
            .iter()
            .map(|d| (*d).to_owned())
            .collect();
        known.extend(
            extra_known
                .iter()
                .map(|d| d.as_ref().trim().trim_matches('.').to_ascii_lowercase())
                .filter(|d| !d.is_empty()),
        );
        let known_max_len = known.iter().map(String::len).max().unwrap_or(0);
        let known_single_labels = known.iter().any(|d| !d.contains('.'));
        Self {
            internal,
            known,
            known_max_len,
            known_single_labels,
        }
    }

    pub fn internal(&self) -> &InternalHosts {
        &self.internal
    }

    /// The first reference to the outside found in `text`, if any.
    pub fn scan(&self, text: &str) -> Option<ExternalReference> {
        if !might_refer(text) {
            return None;
        }
        // Twice: as written (a client parses the URL before decoding anything, so
        // `https://localhost%2F@evil.example` goes to evil.example) and with every
        // disguise removed (`https%3A%2F%2Fevil.example`).
        let plain = normalise_plain(text);
        if let Some(found) = self.scan_normalised(&plain) {
            return Some(found);
        }
        let decoded = decode_layers(&plain);
        if *decoded != *plain
            && let Some(found) = self.scan_normalised(&decoded)
        {
            return Some(found);
        }
        // WHATWG parsers delete tabs and line breaks anywhere in a URL, the scheme and its
        // slashes included (`https\n://host`, `/\t/host`, `https&#10;://host` once
        // decoded): URLs are looked for again in both readings with them deleted.
        for text in [&*plain, &*decoded] {
            // Only where a URL can start: a colon, a slash or a backslash.
            if text.contains(['\t', '\n', '\r']) && text.contains([':', '/', '\\']) {
                let joined: String = text
                    .chars()
                    .filter(|c| !matches!(c, '\t' | '\n' | '\r'))
                    .collect();
                if let Some(found) = self.scan_urls(&joined) {
                    return Some(found);
                }
            }
            if *decoded == *plain {
                break;
            }
        }
        None
    }

    fn scan_normalised(&self, text: &str) -> Option<ExternalReference> {
        self.scan_urls(text)
            .or_else(|| self.scan_command_targets(text))
            .or_else(|| self.scan_ipv4(text))
            .or_else(|| self.scan_ipv6(text))
            .or_else(|| self.scan_domains(text))
    }

    /// Every string in a JSON value (object keys included), with the path of each finding
    /// under `path` (`metadata.links[2]`); at most `limit` findings.
    pub fn scan_json(
        &self,
        value: &Json,
        path: &str,
        limit: usize,
        found: &mut Vec<(String, ExternalReference)>,
    ) {
        let mut path = path.to_owned();
        self.scan_json_at(value, &mut path, limit, found);
    }

    /// [`Self::scan_json`] with the path grown and cut back in place.
    fn scan_json_at(
        &self,
        value: &Json,
        path: &mut String,
        limit: usize,
        found: &mut Vec<(String, ExternalReference)>,
    ) {
        if found.len() >= limit {
            return;
        }
        match value {
            Json::String(s) => {
                if let Some(r) = self.scan(s) {
                    found.push((path.clone(), r));
                }
            }
            Json::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    let len = path.len();
                    crate::error::push_path_index(path, i);
                    self.scan_json_at(item, path, limit, found);
                    path.truncate(len);
                }
            }
            Json::Object(map) => {
                for (key, item) in map {
                    let len = path.len();
                    crate::error::push_path_key(path, key);
                    if let Some(r) = self.scan(key) {
                        found.push((path.clone(), r));
                    }
                    self.scan_json_at(item, path, limit, found);
                    path.truncate(len);
                }
            }
            _ => {}
        }
    }

    /// Whether `ascii` is a known service domain or a name under one: the name itself
    /// or what follows one of its dots is on the list.
    fn is_known_service(&self, ascii: &str) -> bool {
        // From the end, and no longer than the longest domain on the list (a name of a
        // megabyte is not hashed at each of its dots).
        let max = self.known_max_len;
        (ascii.len() <= max && self.known.contains(ascii))
            || memchr::memrchr_iter(b'.', ascii.as_bytes())
                .take_while(|dot| ascii.len() - dot - 1 <= max)
                .any(|dot| self.known.contains(&ascii[dot + 1..]))
    }

    fn scan_urls(&self, text: &str) -> Option<ExternalReference> {
        // A scheme's colon, or two slashes of either kind (`//`, `\\`, `/\`, `\/`).
        if !text.contains(':')
            && !text
                .as_bytes()
                .windows(2)
                .any(|w| matches!(w, [b'/' | b'\\', b'/' | b'\\']))
        {
            return None;
        }
        let mut stops = UrlStops::default();
        for whole in URL_START.find_iter(text) {
            // The pattern's two forms: `scheme:` and its slashes, or `//` / `\\`.
            let (scheme, slashes) = match whole.as_str().split_once(':') {
                Some((scheme, slashes)) if !whole.as_str().starts_with(['/', '\\']) => {
                    (Some(scheme), slashes)
                }
                _ => (None, ""),
            };
            let before = text[..whole.start()].chars().next_back();
            // How sure the match is a URL: written in full (`scheme://`) it is judged by
            // its host whatever it is; in a lenient form (`//host`, `\\host`, `https:host`,
            // `https:/host`) only a public host or an address counts.
            let strict = match scheme {
                Some(scheme) => {
                    // A scheme longer than the pattern reads began earlier: whatever its
                    // tail, it is not a special one (`aaaa…https://host` is judged by its
                    // host like any scheme with `//`). Text in other scripts may run into
                    // a scheme (`请访问https://`); those letters are not ASCII.
                    let began_earlier = before
                        .is_some_and(|c| c.is_ascii_alphabetic() || matches!(c, '+' | '-' | '.'));
                    if is_special(scheme) && !began_earlier {
                        slashes == "//"
                    } else if slashes == "//" {
                        true
                    } else {
                        // `file:///`, `webpack-internal:///./src`: no host.
                        continue;
                    }
                }
                None => {
                    // `a//b` is a path, `x // y` a comment, `http:///` was matched above.
                    if before
                        .is_some_and(|c| c.is_alphanumeric() || matches!(c, ':' | '/' | '\\' | '.'))
                    {
                        continue;
                    }
                    false
                }
            };
            if identifier_only(&text[..whole.start()]) {
                continue;
            }
            // A host is in a URL's first kilobytes; reading further for every match would
            // make hostile input quadratic.
            let mut end = (whole.end() + MAX_URL_SCAN).min(text.len());
            while !text.is_char_boundary(end) {
                end -= 1;
            }
            let rest = &text[whole.end()..end];
            if let Some(scheme) = scheme
                && CLOUD_SCHEMES.contains(&scheme)
            {
                let bucket = rest.split(['/', '?', '#', ' ']).next().unwrap_or("");
                if !bucket.is_empty() {
                    return Some(ExternalReference {
                        kind: ReferenceKind::Url,
                        host: format!("{scheme}://{bucket}"),
                    });
                }
                continue;
            }
            let candidates = url_candidates(text, whole.end(), end, strict, &mut stops);
            for (i, candidate) in candidates.iter().enumerate() {
                // Two endings may give the same text up to the host's end: one verdict.
                if candidates[..i].contains(candidate) {
                    continue;
                }
                if let Some(found) = self.judge_url(candidate, strict) {
                    return Some(found);
                }
            }
        }
        None
    }

    /// The verdict on one URL candidate (`rest` is what follows `scheme://`; any scheme is
    /// read as `http` would be, its host as a network address). Only the text up to the end
    /// of the authority as RFC 3986 reads it (the first `/`, `?` or `#` after the leading
    /// slashes) decides it; [`url_candidates`] cuts there.
    fn judge_url(&self, rest: &str, strict: bool) -> Option<ExternalReference> {
        let rest = rest.trim_start_matches(['/', '\\']);
        let bytes = rest.as_bytes();
        let rfc_end = memchr::memchr3(b'/', b'?', b'#', bytes).unwrap_or(bytes.len());
        let authority_end = memchr::memchr(b'\\', &bytes[..rfc_end]).unwrap_or(rfc_end);
        let authority = &rest[..authority_end];
        if authority.is_empty() {
            return None;
        }
        // Only [`MAX_URL_SCAN`] bytes are read: an authority that does not end within them
        // (a userinfo padded to push the host out of sight) is refused as it is.
        if strict && authority.len() >= MAX_URL_SCAN - 8 {
            return Some(ExternalReference {
                kind: ReferenceKind::Url,
                host: authority.chars().take(100).collect(),
            });
        }
        // A lenient form counts only with a public host, an address or a known service; a
        // name of one plain label by both readings (`http:/http:/`, `https:\\x`) is none
        // of them, and is told without parsing it.
        if !strict
            && self.plain_label(authority_host(authority))
            && self.plain_label(authority_host(&rest[..rfc_end]))
        {
            return None;
        }
        let hosts = if whatwg_fails(authority) {
            // Neither reading can parse it (the WHATWG one, which fails here, comes first).
            Vec::new()
        } else {
            match memchr::memrchr(b'@', authority.as_bytes()) {
                // The userinfo never decides a host: both readings take the host after the
                // last `@` (the RFC 3986 one may find a later one, after a backslash, which
                // is kept), so a long userinfo is not parsed.
                Some(at) => lenient_url_hosts(&format!("x{}", &rest[at..])),
                None => lenient_url_hosts(rest),
            }
        };
        if hosts.is_empty() {
            // Unreadable. A placeholder (`https://{host}/`, `http://%s:%d/`) leads nowhere;
            // userinfo or a backslash in it is a trick some client may read its own way.
            if strict && authority.contains(['@', '\\']) {
                return Some(ExternalReference {
                    kind: ReferenceKind::Url,
                    host: authority.chars().take(100).collect(),
                });
            }
            return None;
        }
        let outside = hosts.iter().find(|h| {
            self.is_known_host(h) || (!self.internal.is_internal(h) && (strict || is_public(h)))
        })?;
        Some(ExternalReference {
            kind: ReferenceKind::Url,
            host: outside.to_string(),
        })
    }

    /// Addresses written after a command that connects, in any notation a resolver takes:
    /// `ping 134744072`, `ssh root@0x08080808`, `ping 8.8.2056`, `ping 010.010.010.010`.
    fn scan_command_targets(&self, text: &str) -> Option<ExternalReference> {
        for m in COMMAND.find_iter(text) {
            // What follows on the same line, within a bounded window (linear time).
            let mut end = (m.end() + COMMAND_WINDOW).min(text.len());
            while !text.is_char_boundary(end) {
                end -= 1;
            }
            let tail = &text[m.end()..end];
            let tail = tail.split('\n').next().unwrap_or(tail);
            for token in tail
                .split_whitespace()
                .filter(|t| !t.starts_with('-'))
                .take(4)
            {
                let token = token.trim_matches(|c: char| {
                    matches!(c, '"' | '\'' | '(' | ')' | ',' | ';' | '[' | ']')
                });
                let target = token.rsplit('@').next().unwrap_or(token);
                let target = target.split(['/', '?']).next().unwrap_or(target);
                let host = match target.rsplit_once(':') {
                    Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) => h,
                    _ => target,
                };
                if host.is_empty() || !host.bytes().next().is_some_and(|b| b.is_ascii_digit()) {
                    continue;
                }
                // A count or a port (`-c 3`, `5432`) is not an address; one number is, when
                // it is large enough to be one (`134744072`), and so is any dotted or hex
                // form.
                let numeric = host.bytes().all(|b| b.is_ascii_digit());
                if numeric && host.parse::<u64>().is_ok_and(|n| n < 1 << 24) {
                    continue;
                }
                let parsed = match Host::parse(host) {
                    Ok(Host::Ipv4(ip)) if is_host_address(ip) => Host::Ipv4(ip),
                    Ok(Host::Ipv6(ip)) => Host::Ipv6(ip),
                    _ => continue,
                };
                if !self.internal.is_internal(&parsed) {
                    return Some(ExternalReference {
                        kind: ReferenceKind::IpAddress,
                        host: parsed.to_string(),
                    });
                }
            }
        }
        None
    }

    /// Whether `host` is a single label that is a name, not a number (WHATWG reads a
    /// label that starts with a digit as an IPv4 address where it can), spelled in plain
    /// ASCII (no escape, dot or character that IDNA could turn into one), and not on the
    /// list of known services: a host that is neither public nor an address.
    fn plain_label(&self, host: &str) -> bool {
        let bytes = host.as_bytes();
        bytes.first().is_some_and(u8::is_ascii_alphabetic)
            && bytes
                .iter()
                .all(|&b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            && !(self.known_single_labels && self.known.contains(&host.to_ascii_lowercase()))
    }

    fn is_known_host(&self, host: &Host<String>) -> bool {
        matches!(host, Host::Domain(d) if self.is_known_service(d))
    }

    fn scan_ipv4(&self, text: &str) -> Option<ExternalReference> {
        for m in IPV4.find_iter(text) {
            let before = text[..m.start()].chars().next_back();
            let mut after = text[m.end()..].chars();
            let next = after.next();
            // Part of a longer dotted number (a version 1.2.3.4.5), or of a word; CJK text
            // may run into an address (`DNS服务器8.8.8.8`).
            if before.is_some_and(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
                || next.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
                || (next == Some('.') && after.next().is_some_and(|c| c.is_ascii_digit()))
                || after_version_word(&text[..m.start()])
            {
                continue;
            }
            // Read as a resolver reads it: `010.010.010.010` is 8.8.8.8.
            let Ok(Host::Ipv4(ip)) = Host::parse(m.as_str()) else {
                continue;
            };
            if !is_host_address(ip) {
                continue;
            }
            if !self.internal.is_internal_ip(IpAddr::V4(ip)) {
                return Some(ExternalReference {
                    kind: ReferenceKind::IpAddress,
                    host: ip.to_string(),
                });
            }
        }
        None
    }

    fn scan_ipv6(&self, text: &str) -> Option<ExternalReference> {
        if !text.contains(':') {
            return None;
        }
        for m in IPV6.find_iter(text) {
            let candidate = m.as_str();
            let bracketed = candidate.starts_with('[') && candidate.ends_with(']');
            let bare = candidate.trim_start_matches('[').trim_end_matches(']');
            let before = text[..m.start()].chars().next_back();
            let next = text[m.end()..].chars().next();
            // `items[::2]`, `std::fs`: an index or a path, not an address.
            if before
                .is_some_and(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | ':' | ']' | ')'))
                || next.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
            {
                continue;
            }
            let Ok(ip) = bare.parse::<Ipv6Addr>() else {
                continue;
            };
            let groups = bare.split(':').filter(|g| !g.is_empty()).count();
            if ip.is_unspecified() || groups < 3 || (!bracketed && bare.ends_with(':')) {
                continue;
            }
            if !self.internal.is_internal_ip(IpAddr::V6(ip)) {
                return Some(ExternalReference {
                    kind: ReferenceKind::IpAddress,
                    host: describe(IpAddr::V6(ip)),
                });
            }
        }
        None
    }

    fn scan_domains(&self, text: &str) -> Option<ExternalReference> {
        if !text.contains('.') {
            return None;
        }
        let mut words = None;
        for (start, end) in domain_matches(text) {
            let before = text[..start].chars().next_back();
            // The tail of a longer token, or a path segment.
            if before.is_some_and(|c| {
                c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | '/' | '\\' | '$' | '%')
            }) {
                continue;
            }
            let Ok(Host::Domain(ascii)) = Host::parse(&text[start..end]) else {
                continue;
            };
            let ascii = ascii.trim_end_matches('.').to_owned();
            let mut rest = &text[end..];
            // A trailing dot is the same name: `example.com./path`.
            if let Some(after_dot) = rest.strip_prefix('.')
                && after_dot.starts_with(['/', ':'])
            {
                rest = after_dot;
            }
            let known = self.is_known_service(&ascii);
            // Whether a command comes before: read only when nothing else decides.
            let mut in_command = None;
            let mut command_before = || {
                *in_command.get_or_insert_with(|| {
                    let words = words.get_or_insert_with(|| CommandWords::new(text));
                    after_command(text, start, words)
                })
            };
            // After `@`: an e-mail address, unless a command connects to it, or a port or
            // a path follows (`git@github.com:acme/x.git`, `admin:pw@host:8443/api`).
            let slash_path = rest.starts_with('/') && followed_by_path(rest);
            if before == Some('@')
                && !known
                && !rest.starts_with(':')
                && !slash_path
                && !command_before()
            {
                continue;
            }
            // Known services count wherever they appear, even those that are themselves
            // public suffixes (`vercel.app`, `githubusercontent.com`).
            if known {
                return Some(ExternalReference {
                    kind: ReferenceKind::HostName,
                    host: ascii,
                });
            }
            if self.internal.is_internal_domain(&ascii) {
                continue;
            }
            let suffix = match psl::suffix(ascii.as_bytes()) {
                Some(s) if s.typ().is_some() => s,
                _ => continue,
            };
            if psl::domain(ascii.as_bytes()).is_none() {
                continue;
            }
            let tld = std::str::from_utf8(suffix.as_bytes())
                .unwrap_or("")
                .rsplit('.')
                .next()
                .unwrap_or("");
            // `main.rs`, `setup.py`, `guide.md`: file names unless a path follows.
            let file_like = FILE_LIKE_TLDS.contains(&tld);
            let host_like = ascii.starts_with("www.")
                || (followed_by_path(rest) && !PRODUCT_NAMES.contains(&ascii.as_str()))
                || (!file_like
                    && (followed_by_port(rest)
                        || (before == Some('@') && rest.starts_with(':'))
                        || command_before()));
            if host_like {
                return Some(ExternalReference {
                    kind: ReferenceKind::HostName,
                    host: ascii,
                });
            }
        }
        None
    }
}

/// The matches of [`DOMAIN`] in `text`, as byte ranges. Its classes are large (every
/// alphabetic character and decimal digit, up to 64 of them in a label), which takes the
/// lazy DFA over its memory budget and the search to the slow engine (hundreds of
/// nanoseconds a byte). So ASCII text is searched with the classes cut to ASCII, and other
/// text through a copy that has one byte per character naming its class: the same
/// matches, from small automata.
fn domain_matches(text: &str) -> Vec<(usize, usize)> {
    if text.is_ascii() {
        return DOMAIN_ASCII
            .find_iter(text)
            .map(|m| (m.start(), m.end()))
            .collect();
    }
    let (classes, offsets) = char_classes(text);
    DOMAIN_CLASSES
        .find_iter(&classes)
        .map(|m| (offsets[m.start()], offsets[m.end()]))
        .collect()
}

/// One byte per character of `text` naming its class in [`DOMAIN`] (`a` alphabetic, `0`
/// a decimal digit, `_`, `-`, `.` themselves, a space for anything else), and where each
/// character starts in `text` (and the text's length, last).
fn char_classes(text: &str) -> (String, Vec<usize>) {
    let [alphabetic, digits] = &*ALPHABETIC_AND_DIGITS;
    let within = |ranges: &[(char, char)], c: char| {
        ranges
            .binary_search_by(|&(lo, hi)| {
                if hi < c {
                    std::cmp::Ordering::Less
                } else if lo > c {
                    std::cmp::Ordering::Greater
                } else {
                    std::cmp::Ordering::Equal
                }
            })
            .is_ok()
    };
    let mut classes = String::with_capacity(text.len());
    let mut offsets = Vec::with_capacity(text.len() + 1);
    for (at, c) in text.char_indices() {
        offsets.push(at);
        classes.push(match c {
            'a'..='z' | 'A'..='Z' => 'a',
            '0'..='9' => '0',
            '_' | '-' | '.' => c,
            _ if c.is_ascii() => ' ',
            _ if within(alphabetic, c) => 'a',
            _ if within(digits, c) => '0',
            _ => ' ',
        });
    }
    offsets.push(text.len());
    (classes, offsets)
}

/// Schemes a WHATWG parser treats as special: any number of slashes or backslashes may
/// follow the colon, and the host is parsed as an address where it can be.
fn is_special(scheme: &str) -> bool {
    matches!(scheme, "http" | "https" | "ws" | "wss" | "ftp")
}

/// Whether a host is out in the world for certain: an address, or a name under a public
/// suffix (the bar for URLs written in a lenient form).
fn is_public(host: &Host<String>) -> bool {
    match host {
        Host::Ipv4(_) | Host::Ipv6(_) => true,
        Host::Domain(name) => psl::domain(name.trim_end_matches('.').as_bytes())
            .is_some_and(|d| d.suffix().typ().is_some()),
    }
}

/// Where the next character of a kind is in a text, for positions that only grow (the
/// URL matches of one text, in order): a search resumes where the last one stopped, so
/// the whole text is read once however many matches share a stretch of it.
#[derive(Default)]
struct NextStop {
    from: usize,
    at: usize,
}

impl NextStop {
    /// The first position at or after `pos` of a character `stop` accepts, or the text's
    /// length.
    fn find(&mut self, text: &str, pos: usize, stop: impl Fn(char) -> bool) -> usize {
        if pos < self.from || pos > self.at || (self.from, self.at) == (0, 0) {
            self.from = pos;
            self.at = text[pos..].find(stop).map_or(text.len(), |i| pos + i);
        }
        self.at
    }
}

/// The ends [`url_candidates`] looks for, shared by the URL matches of one text.
#[derive(Default)]
struct UrlStops {
    long: NextStop,
    short: NextStop,
    authority: NextStop,
    continued: NextStop,
}

fn long_stop(c: char) -> bool {
    c.is_whitespace() || matches!(c, '<' | '>' | '"' | '`')
}

/// Where a URL continued over line breaks ([`continued_url`]) ends, or its WHATWG
/// authority does.
fn continued_stop(c: char) -> bool {
    (c.is_whitespace() && !matches!(c, '\t' | '\n' | '\r'))
        || matches!(c, '<' | '>' | '"' | '`' | '/' | '?' | '#' | '\\')
}

fn short_stop(c: char) -> bool {
    matches!(c, '\'' | ')' | '|' | '^' | ',' | ';' | '{' | '}')
        || (!c.is_ascii() && !c.is_alphanumeric())
}

/// The ways a URL's text may end (`text[start..end]` follows the scheme). Long: at
/// whitespace or a quote or angle bracket (the userinfo may hold `;`, `,`, `)`, and a
/// client reads on). Short: also at punctuation, without a sentence's final stop.
/// Continued: a tab or line break inside the host, which WHATWG parsers delete.
///
/// The continued form is built only where it can be judged a reference: for a lenient
/// form (not `strict`), not when its WHATWG authority fails to parse however the breaks
/// are read (the test reads it in place, which costs nothing per match where building
/// the text would cost its length: `http:\n` repeated).
///
/// Each is cut after the end of its authority as RFC 3986 reads it (the first `/`, `?` or
/// `#` after the leading slashes): nothing after it changes a verdict ([`judge_url`] reads
/// only the authority, and the rest of a URL never makes a parser fail), and so a match
/// costs the length of its host, not of the text after it.
fn url_candidates<'t>(
    text: &'t str,
    start: usize,
    end: usize,
    strict: bool,
    stops: &mut UrlStops,
) -> Vec<Cow<'t, str>> {
    let rest = &text[start..end];
    let long_end = stops.long.find(text, start, long_stop).min(end) - start;
    let long = &rest[..long_end];
    let short_end = stops
        .short
        .find(text, start, short_stop)
        .min(start + long_end)
        - start;
    let short = long[..short_end].trim_end_matches(['.', ':', '!', '?']);
    // The end of the authority: the first `/`, `?` or `#` after the leading slashes.
    let lead = rest.len() - rest.trim_start_matches(['/', '\\']).len();
    let cut = stops
        .authority
        .find(text, start + lead, |c| matches!(c, '/' | '?' | '#'))
        .saturating_add(1)
        .min(end)
        - start;
    let authority_only = |c: &'t str| Cow::Borrowed(&c[..c.len().min(cut)]);
    let mut out = vec![authority_only(short)];
    if long != short {
        out.push(authority_only(long.trim_end_matches(['.', ':', '!', '?'])));
    }
    let broken = rest[long_end..].starts_with(['\t', '\n', '\r']);
    // `long` holds a `/`, `?` or `#` when it reaches the cut, or when the leading slashes
    // hold a `/`.
    if broken && long_end < cut && !rest[..lead].contains('/') {
        // A failure read with the breaks in place is one without them: a break is never
        // the host's first or last significant byte, nor a port's ([`whatwg_fails`]).
        let stop = stops
            .continued
            .find(text, start + lead, continued_stop)
            .min(end)
            - start;
        if strict || !whatwg_fails(&rest[lead..stop]) {
            out.push(Cow::Owned(continued_url(rest)));
        }
    }
    out
}

/// A URL's text with tabs and line breaks deleted (as WHATWG parsers do), up to whitespace
/// or a quote, and cut after the end of its authority (as [`url_candidates`] does).
fn continued_url(rest: &str) -> String {
    let mut out = String::new();
    let mut leading = true;
    for c in rest.chars().filter(|c| !matches!(c, '\t' | '\n' | '\r')) {
        if c.is_whitespace() || matches!(c, '<' | '>' | '"' | '`') {
            break;
        }
        out.push(c);
        leading &= matches!(c, '/' | '\\');
        if !leading && matches!(c, '/' | '?' | '#') {
            break;
        }
    }
    out
}

/// The host of an authority as written (after the last `@`, up to a `:`), unparsed.
fn authority_host(authority: &str) -> &str {
    let host_port = match memchr::memrchr(b'@', authority.as_bytes()) {
        Some(at) => &authority[at + 1..],
        None => authority,
    };
    match memchr::memchr(b':', host_port.as_bytes()) {
        Some(colon) => &host_port[..colon],
        None => host_port,
    }
}

/// Whether a WHATWG parser fails on an authority (userinfo@host:port, no `/`, `?`, `#` or
/// `\` in it), as far as can be told without parsing it: the host (after the last `@`, up
/// to the first `:` outside brackets) is empty, or opens a bracket it does not close, or
/// what follows it is not digits. Characters the parser would trim from the end of the
/// URL (controls, spaces) are never what decides. A cheap refusal before the real parse,
/// which reads the whole authority (`http:[` repeated made every match read 512 bytes).
fn whatwg_fails(authority: &str) -> bool {
    let host_port = match memchr::memrchr(b'@', authority.as_bytes()) {
        Some(at) => &authority[at + 1..],
        None => authority,
    };
    let bytes = host_port.as_bytes();
    // The host ends at the first `:` outside brackets (`[` opens, `]` closes).
    let (mut at, mut inside) = (0, false);
    let host_end = loop {
        let next = if inside {
            memchr::memchr(b']', &bytes[at..])
        } else {
            memchr::memchr2(b':', b'[', &bytes[at..])
        };
        let Some(next) = next.map(|n| at + n) else {
            break bytes.len();
        };
        match bytes[next] {
            b':' => break next,
            b'[' => inside = true,
            _ => inside = false,
        }
        at = next + 1;
    };
    let host = &bytes[..host_end];
    let unclosed =
        host.first() == Some(&b'[') && host.last().is_some_and(|&b| b > b' ' && b != b']');
    let bad_port = host_end < bytes.len()
        && bytes[host_end + 1..]
            .iter()
            .any(|&b| b > b' ' && !b.is_ascii_digit());
    host.is_empty() || unclosed || bad_port
}

/// The hosts of `scheme://{rest}` (`rest` holds no whitespace) by either reading (WHATWG,
/// RFC 3986) that can read it, as [`super::hosts::url_hosts`] reads them, and where that
/// fails, the WHATWG host alone (a URL one reading refuses may still be followed by a
/// client of the other).
///
/// The WHATWG parse stops after the authority (at the first `/`, `?`, `#` or `\`): what
/// follows can neither make it fail nor change the host, and parsing it for every
/// URL-like match would make hostile text slow.
fn lenient_url_hosts(rest: &str) -> Vec<Host<String>> {
    let bytes = rest.as_bytes();
    let rfc_end = memchr::memchr3(b'/', b'?', b'#', bytes).unwrap_or(bytes.len());
    let whatwg_end = memchr::memchr(b'\\', &bytes[..rfc_end]).unwrap_or(rfc_end);
    let cut = (whatwg_end + 1).min(bytes.len());
    let Ok(whatwg) = url::Url::parse(&format!("http://{}", &rest[..cut])) else {
        return Vec::new();
    };
    let mut hosts = Vec::with_capacity(2);
    if let Some(host) = whatwg.host() {
        hosts.push(host.to_owned());
    }
    // The RFC 3986 reading: userinfo up to the last `@` before the first `/`, `?` or `#`.
    let authority = &rest[..rfc_end];
    let host_port = match memchr::memrchr(b'@', authority.as_bytes()) {
        Some(at) => &authority[at + 1..],
        None => authority,
    };
    let host = if let Some(v6) = host_port.strip_prefix('[') {
        format!("[{}]", v6.split(']').next().unwrap_or(""))
    } else {
        host_port.split(':').next().unwrap_or("").to_owned()
    };
    // No host there (`https:///evil.example/`), or none that parses: the WHATWG one.
    if !host.is_empty()
        && let Ok(host) = Host::parse(&host)
        && !hosts.contains(&host)
    {
        hosts.push(host);
    }
    hosts
}

/// A namespace or schema identifier (`xmlns="http://www.w3.org/2000/svg"`,
/// `"$schema": "http://json-schema.org/..."`): a name, never fetched.
fn identifier_only(before: &str) -> bool {
    let mut start = before.len().saturating_sub(24);
    while !before.is_char_boundary(start) {
        start += 1;
    }
    let window = before[start..].trim_end_matches(['"', '\'', ' ', '=', ':']);
    window.ends_with("xmlns")
        || window.rsplit_once("xmlns:").is_some_and(|(_, prefix)| {
            prefix
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        })
        || window.ends_with("$schema")
        || window.ends_with("$id")
}

/// A version number, not an address: `version 1.0.0.1`, `v2.1.0.3`, `firmware 5.4.3.2`.
fn after_version_word(before: &str) -> bool {
    let mut start = before.len().saturating_sub(16);
    while !before.is_char_boundary(start) {
        start += 1;
    }
    let window = before[start..].trim_end();
    [
        "version", "ver", "v", "release", "build", "firmware", "rev", "revision", "section", "§",
    ]
    .iter()
    .any(|w| {
        window.ends_with(w)
            && window[..window.len() - w.len()]
                .chars()
                .next_back()
                .is_none_or(|c| !c.is_ascii_alphanumeric())
    })
}

/// Whether an IPv4 address can be a host: not a netmask (`255.255.255.0`), a broadcast,
/// multicast, "this network" (0/8), or `n.0.0.0` (how four-part versions such as
/// `1.0.0.0` read, and a whole /8 network rather than a host).
fn is_host_address(ip: Ipv4Addr) -> bool {
    let bits = u32::from(ip);
    let octets = ip.octets();
    let netmask = bits.leading_ones() + bits.trailing_zeros() == 32 && octets[0] == 255;
    !(netmask
        || ip.is_broadcast()
        || ip.is_multicast()
        || octets[0] == 0
        || octets[1..] == [0, 0, 0])
}

/// `/` or `?` and then something that is not a space: `example.com/path`,
/// `example.com?token=`.
fn followed_by_path(rest: &str) -> bool {
    let mut chars = rest.chars();
    matches!(chars.next(), Some('/' | '?')) && chars.next().is_some_and(|c| !c.is_whitespace())
}

/// `:` and one to five digits, then not a letter or digit: `example.com:8443`.
fn followed_by_port(rest: &str) -> bool {
    let Some(digits) = rest.strip_prefix(':') else {
        return false;
    };
    let n = digits.bytes().take_while(u8::is_ascii_digit).count();
    (1..=5).contains(&n)
        && digits[n..]
            .chars()
            .next()
            .is_none_or(|c| !c.is_alphanumeric())
}

/// Whether a command that connects (or a link target) comes shortly before `text[pos..]`,
/// on the same line.
fn after_command(text: &str, pos: usize, words: &CommandWords) -> bool {
    let before = &text[..pos];
    let mut start = before.len().saturating_sub(COMMAND_WINDOW);
    while !before.is_char_boundary(start) {
        start += 1;
    }
    let window = &before[start..];
    // The current line, and the one before when it ends with a continuation (`\`).
    let mut lines = window.rsplitn(3, '\n');
    let current = lines.next().unwrap_or(window);
    let previous = lines.next().filter(|l| l.trim_end().ends_with('\\'));
    // Most windows hold none of the words either pattern needs.
    let has_word = |line: &str| {
        let from = line.as_ptr() as usize - text.as_ptr() as usize;
        words.within(from, from + line.len())
    };
    (has_word(current) && (COMMAND.is_match(current) || COMMAND_JUST_BEFORE.is_match(current)))
        || previous.is_some_and(|p| has_word(p) && COMMAND.is_match(p))
}

/// A cheap first look: text that has none of the characters a reference needs (a dot, a
/// colon, an escape, a long number, `0x`) and is plain ASCII cannot hold one.
fn might_refer(text: &str) -> bool {
    let mut digits = 0;
    let mut previous = 0u8;
    for b in text.bytes() {
        if matches!(b, b'.' | b':' | b'/' | b'%' | b'\\' | b'&') || !b.is_ascii() {
            return true;
        }
        // An address written as one number (`134744072`) or in hex (`0x08080808`).
        digits = if b.is_ascii_digit() { digits + 1 } else { 0 };
        if digits >= 8 || (previous == b'0' && (b == b'x' || b == b'X')) {
            return true;
        }
        previous = b;
    }
    false
}

mod normalise;

pub(crate) use normalise::is_invisible;
pub use normalise::{decode_layers, normalise, normalise_plain};

#[cfg(test)]
mod tests;
