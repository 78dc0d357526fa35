//! Key logs: the SSLKEYLOGFILE format (RFC 9850, wire-facts §6), the
//! bounded table of secrets by client random that the workers read, the
//! follower that picks up lines a proxy appends while a live capture runs,
//! and TLS secrets embedded in pcapng Decryption Secrets Blocks.
//!
//! This file owns every secret mtlsniff holds. It must not decrypt (that is
//! `decrypt`) nor decide anything about a flow. Invariants: a secret lives
//! in a `Secret` (wiped when dropped, `Debug` shows only its length) and is
//! never written anywhere; the table holds at most `max_clients` client
//! randoms (the oldest go first, counted); a line that does not parse is
//! counted, never an error; the only `Err` is a key log that cannot be read
//! when the run starts. The table holds at most its byte budget (an eighth
//! of `--memory`, `pipeline::budget`): every entry's heap cost (the table's
//! slots at their capacity, the eviction order, each secret's bytes) is
//! counted, the oldest client randoms go first when a new secret would not
//! fit, and a table that must grow checks first that the old and the new
//! copy fit together. Files and DSBs are read in chunks of `CHUNK` bytes,
//! never whole. Only the secrets a handshake needs are kept: the
//! two handshake traffic secrets, SERVER_TRAFFIC_SECRET_0 (for a server's
//! alert after its Finished) and TLS 1.2 master secrets; application
//! traffic secrets of the client, exporter and early secrets are read and
//! dropped.

#![deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::collections::VecDeque;
use std::fmt;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, RwLock};
use std::time::{Duration, Instant};

use rustc_hash::FxHashMap;
use zeroize::Zeroizing;

/// A ClientHello.random (RFC 8446 §4.1.2): the key of every key log line.
pub const RANDOM_LEN: usize = 32;
/// Bytes of secrets held by default: an eighth of the default `--memory`
/// (`pipeline::budget::secrets_budget`, which the run uses; tests check
/// the two agree). At ~300 bytes per TLS 1.3 connection, about 100,000.
pub const DEFAULT_BUDGET: usize = 32 * 1024 * 1024;
/// Bytes read from a file or a DSB at a time.
const CHUNK: usize = 64 * 1024;
/// A key log line is at most ~180 bytes (label, 64 + 96 hex digits);
/// anything longer than this is not one and is skipped to its newline.
const LINE_MAX: usize = 1024;
/// Bytes read from the key log in one poll (the rest waits for the next).
const POLL_BYTES_MAX: u64 = 16 * 1024 * 1024;
/// A worker that misses a client random polls the followed file itself, at
/// most this often, so a line appended just before the verdict is found.
const MISS_POLL_INTERVAL: Duration = Duration::from_millis(50);
/// TLS key log bytes read from a capture's Decryption Secrets Blocks.
const CAPTURE_SECRETS_MAX: u64 = 64 * 1024 * 1024;
/// pcapng block types and the TLS secrets type (pcapng §4.7).
const PCAPNG_SHB: u32 = 0x0A0D_0D0A;
const PCAPNG_DSB: u32 = 0x0000_000A;
const SECRETS_TYPE_TLS: u32 = 0x544c_534b; // "TLSK"

/// One secret from a key log, wiped from memory when dropped.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Zeroizing<Box<[u8]>>);

impl Secret {
    pub fn bytes(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Secret({} bytes)", self.0.len())
    }
}

/// The labels mtlsniff keeps (RFC 9850 §3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Label {
    /// CLIENT_HANDSHAKE_TRAFFIC_SECRET: the client's encrypted flight.
    ClientHandshake,
    /// SERVER_HANDSHAKE_TRAFFIC_SECRET: the server's encrypted flight.
    ServerHandshake,
    /// SERVER_TRAFFIC_SECRET_0: only to read an alert the server sends
    /// after its Finished (a rejected client certificate), or a
    /// post-handshake CertificateRequest (RFC 8446 §4.6.2).
    ServerTraffic0,
    /// CLIENT_TRAFFIC_SECRET_0: only to read a post-handshake client
    /// Certificate (RFC 8446 §4.6.2) when the client offered
    /// post_handshake_auth.
    ClientTraffic0,
    /// CLIENT_RANDOM: a TLS <= 1.2 master secret.
    MasterSecret,
}

/// Labels RFC 9850 defines that mtlsniff reads and drops.
const UNUSED_LABELS: [&str; 6] = [
    "CLIENT_EARLY_TRAFFIC_SECRET",
    "EARLY_EXPORTER_SECRET",
    "EXPORTER_SECRET",
    "ECH_SECRET",
    "ECH_CONFIG",
    "RSA",
];

/// The secrets of one connection (one client random).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FlowSecrets {
    pub client_handshake: Option<Secret>,
    pub server_handshake: Option<Secret>,
    pub server_traffic: Option<Secret>,
    pub client_traffic: Option<Secret>,
    pub master: Option<Secret>,
}

impl FlowSecrets {
    fn slot(&mut self, label: Label) -> &mut Option<Secret> {
        match label {
            Label::ClientHandshake => &mut self.client_handshake,
            Label::ServerHandshake => &mut self.server_handshake,
            Label::ServerTraffic0 => &mut self.server_traffic,
            Label::ClientTraffic0 => &mut self.client_traffic,
            Label::MasterSecret => &mut self.master,
        }
    }
}

/// What one key log line is.
#[derive(Debug, PartialEq, Eq)]
pub enum Line {
    /// A secret mtlsniff keeps.
    Secret {
        label: Label,
        random: [u8; RANDOM_LEN],
        secret: Secret,
    },
    /// A valid label whose secret is not needed, or a label this version
    /// does not know (RFC 9850: ignore it).
    Unused,
    /// Blank or a `#` comment.
    Blank,
    /// Not a key log line: missing fields, bad hex, wrong lengths.
    Malformed,
}

/// Parse one line (without its `\n`; a trailing `\r` is allowed).
pub fn parse_line(raw: &[u8]) -> Line {
    let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
    let Ok(text) = std::str::from_utf8(raw) else {
        return Line::Malformed;
    };
    let text = text.trim();
    if text.is_empty() || text.starts_with('#') {
        return Line::Blank;
    }
    let mut fields = text.split_ascii_whitespace();
    let (Some(label), Some(random), Some(secret), None) =
        (fields.next(), fields.next(), fields.next(), fields.next())
    else {
        return Line::Malformed;
    };
    let label = match label {
        "CLIENT_HANDSHAKE_TRAFFIC_SECRET" => Label::ClientHandshake,
        "SERVER_HANDSHAKE_TRAFFIC_SECRET" => Label::ServerHandshake,
        "SERVER_TRAFFIC_SECRET_0" => Label::ServerTraffic0,
        "CLIENT_TRAFFIC_SECRET_0" => Label::ClientTraffic0,
        "CLIENT_RANDOM" => Label::MasterSecret,
        other if UNUSED_LABELS.contains(&other) => return Line::Unused,
        other
            if other
                .bytes()
                .all(|b| b.is_ascii_uppercase() || b == b'_' || b.is_ascii_digit()) =>
        {
            return Line::Unused;
        }
        _ => return Line::Malformed,
    };
    let mut random_bytes = [0u8; RANDOM_LEN];
    if hex::decode_to_slice(random, &mut random_bytes).is_err() {
        return Line::Malformed;
    }
    // Decoded into a buffer of its exact length: no growth leaves an
    // unwiped copy behind, and its heap cost is its length.
    let mut bytes = Zeroizing::new(vec![0u8; secret.len() / 2]);
    if secret.len() % 2 != 0 || hex::decode_to_slice(secret, &mut bytes).is_err() {
        return Line::Malformed;
    }
    let mut secret = bytes;
    // TLS 1.3 secrets are as long as the suite's hash (SHA-256 or
    // SHA-384); a TLS 1.2 master secret is 48 bytes (RFC 5246 §8.1).
    let length_ok = match label {
        Label::MasterSecret => secret.len() == 48,
        _ => matches!(secret.len(), 32 | 48),
    };
    if !length_ok {
        return Line::Malformed;
    }
    Line::Secret {
        label,
        random: random_bytes,
        // A boxed slice (16 B, not a Vec's 24) keeps a table slot at 112 B
        // with five secrets; capacity == len, so no copy is left behind.
        secret: Secret(Zeroizing::new(
            std::mem::take(&mut *secret).into_boxed_slice(),
        )),
    }
}

/// What the key log taught, for the summary.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyLogCounters {
    /// Lines read (comments and blanks included).
    pub lines: u64,
    /// Secrets kept.
    pub secrets: u64,
    /// Secrets that came from the capture's Decryption Secrets Blocks.
    pub capture_secrets: u64,
    /// Lines whose label mtlsniff does not need (or does not know).
    pub unused: u64,
    pub malformed: u64,
    /// The same secret again.
    pub duplicate: u64,
    /// A different secret for a label and random already known: the first
    /// one is kept.
    pub conflicting: u64,
    /// Client randoms forgotten (the oldest first) because the table was
    /// at its byte budget.
    pub dropped: u64,
    /// Decryption Secrets Blocks larger than the whole budget (read
    /// anyway: their newest secrets are kept).
    pub dsb_over_budget: u64,
    /// The followed file was truncated or replaced and read again from
    /// its start.
    pub reopened: u64,
    /// Reads of the followed file that failed (it is tried again).
    pub read_errors: u64,
}

impl KeyLogCounters {
    /// `(name, value)` pairs for the summary.
    pub fn entries(&self) -> Vec<(&'static str, u64)> {
        vec![
            ("keylog.lines", self.lines),
            ("keylog.secrets", self.secrets),
            ("keylog.secrets_from_capture", self.capture_secrets),
            ("keylog.lines_unused", self.unused),
            ("keylog.lines_malformed", self.malformed),
            ("keylog.lines_duplicate", self.duplicate),
            ("keylog.lines_conflicting", self.conflicting),
            ("keylog.clients_dropped", self.dropped),
            ("keylog.dsb_over_budget", self.dsb_over_budget),
            ("keylog.reopened", self.reopened),
            ("keylog.read_errors", self.read_errors),
        ]
    }
}

/// Secrets by client random, at most `budget` bytes of heap (`bytes`);
/// the oldest inserted random goes first when a new secret would not fit.
#[derive(Debug)]
struct SecretTable {
    by_random: FxHashMap<[u8; RANDOM_LEN], FlowSecrets>,
    /// Insertion order, for eviction (one entry per random in the map).
    order: VecDeque<[u8; RANDOM_LEN]>,
    /// Heap bytes of the secrets held (their capacities).
    secret_bytes: usize,
    /// The map's capacity when it last grew: its slots, which removals do
    /// not give back (`capacity()` shrinks as removals leave tombstones).
    map_cap: usize,
    budget: usize,
    counters: KeyLogCounters,
}

/// Heap bytes of a secret.
fn secret_cost(secret: &Secret) -> usize {
    secret.0.len()
}

/// Heap bytes of a hash table whose `capacity()` is `capacity` (hashbrown:
/// a power of two of buckets, 7/8 of them usable from 8 on, one slot and
/// one control byte each, plus a group of control bytes).
fn map_bytes(capacity: usize) -> usize {
    if capacity == 0 {
        return 0;
    }
    let buckets = if capacity < 8 {
        capacity + 1
    } else {
        (capacity * 8).div_ceil(7)
    }
    .next_power_of_two();
    let slot = std::mem::size_of::<([u8; RANDOM_LEN], FlowSecrets)>();
    buckets * (slot + 1) + 16
}

/// The capacity a full table of `capacity` grows to (twice the buckets;
/// four from empty).
fn grown_map_capacity(capacity: usize) -> usize {
    match capacity {
        0 => 3,
        c if c < 7 => 7,
        c => c * 2,
    }
}

impl SecretTable {
    fn new(budget: usize) -> Self {
        SecretTable {
            by_random: FxHashMap::default(),
            order: VecDeque::new(),
            secret_bytes: 0,
            map_cap: 0,
            budget,
            counters: KeyLogCounters::default(),
        }
    }

    /// Heap bytes held: the secrets, the table's slots, the order.
    fn bytes(&self) -> usize {
        self.secret_bytes + map_bytes(self.map_cap) + self.order.capacity() * RANDOM_LEN
    }

    /// Extra bytes a new random costs while it goes in: a full table or
    /// order is copied into one twice its size (both live for a moment).
    /// A table full of tombstones but at most half full of randoms is
    /// cleaned in place instead (hashbrown's rule), at no cost.
    fn growth(&self) -> usize {
        let mut extra = 0;
        let len = self.by_random.len();
        if len >= self.by_random.capacity() && len + 1 > self.map_cap / 2 {
            extra += map_bytes(grown_map_capacity(self.map_cap));
        }
        if self.order.len() >= self.order.capacity() {
            extra += (self.order.capacity() * 2).max(4) * RANDOM_LEN;
        }
        extra
    }

    fn line(&mut self, raw: &[u8], from_capture: bool) {
        self.counters.lines += 1;
        match parse_line(raw) {
            Line::Blank => {}
            Line::Unused => self.counters.unused += 1,
            Line::Malformed => self.counters.malformed += 1,
            Line::Secret {
                label,
                random,
                secret,
            } => self.insert(label, random, secret, from_capture),
        }
    }

    /// Forget the oldest random other than `keep`; false when there is
    /// none.
    fn evict_oldest(&mut self, keep: &[u8; RANDOM_LEN]) -> bool {
        let Some(at) = self.order.iter().position(|r| r != keep) else {
            return false;
        };
        let Some(old) = self.order.remove(at) else {
            return false;
        };
        if let Some(gone) = self.by_random.remove(&old) {
            let secrets = [
                &gone.client_handshake,
                &gone.server_handshake,
                &gone.server_traffic,
                &gone.client_traffic,
                &gone.master,
            ];
            let freed: usize = secrets
                .iter()
                .filter_map(|s| s.as_ref())
                .map(secret_cost)
                .sum();
            self.secret_bytes -= freed;
            self.counters.dropped += 1;
        }
        true
    }

    fn insert(
        &mut self,
        label: Label,
        random: [u8; RANDOM_LEN],
        secret: Secret,
        from_capture: bool,
    ) {
        if let Some(known) = self
            .by_random
            .get_mut(&random)
            .and_then(|f| f.slot(label).as_ref())
        {
            if *known == secret {
                self.counters.duplicate += 1;
            } else {
                self.counters.conflicting += 1;
            }
            return;
        }
        // Room first: the oldest go until the secret (and, for a new
        // random, the table's growth) fits. Evicting never shrinks the
        // table, so after one eviction a new random needs no growth.
        let cost = secret_cost(&secret);
        loop {
            let is_new = !self.by_random.contains_key(&random);
            let growth = if is_new { self.growth() } else { 0 };
            if self.bytes() + growth + cost <= self.budget {
                break;
            }
            if !self.evict_oldest(&random) {
                // Alone it does not fit: forgotten at once.
                self.counters.dropped += 1;
                return;
            }
        }
        if !self.by_random.contains_key(&random) {
            self.order.push_back(random);
        }
        *self.by_random.entry(random).or_default().slot(label) = Some(secret);
        self.map_cap = self.map_cap.max(self.by_random.capacity());
        self.secret_bytes += cost;
        self.counters.secrets += 1;
        if from_capture {
            self.counters.capture_secrets += 1;
        }
        debug_assert!(self.bytes() <= self.budget);
    }

    /// Feed a chunk of key log text; complete lines are parsed, an
    /// unfinished last line waits in `partial` (bounded by LINE_MAX).
    fn text(&mut self, partial: &mut LineBuffer, bytes: &[u8], from_capture: bool) {
        let mut rest = bytes;
        while let Some(at) = rest.iter().position(|&b| b == b'\n') {
            let (line, tail) = rest.split_at(at);
            rest = tail.get(1..).unwrap_or_default();
            if partial.overlong {
                partial.overlong = false;
                partial.bytes.clear();
                self.counters.lines += 1;
                self.counters.malformed += 1;
            } else if partial.bytes.is_empty() {
                self.line(line, from_capture);
            } else {
                partial.bytes.extend_from_slice(line);
                let whole = std::mem::take(&mut partial.bytes);
                self.line(&whole, from_capture);
            }
        }
        if !partial.overlong {
            partial.bytes.extend_from_slice(rest);
            if partial.bytes.len() > LINE_MAX {
                partial.bytes.clear();
                partial.overlong = true;
            }
        }
    }

    /// The end of a file that is not followed: an unfinished last line is
    /// a whole line.
    fn flush(&mut self, partial: &mut LineBuffer, from_capture: bool) {
        if partial.overlong {
            self.counters.lines += 1;
            self.counters.malformed += 1;
        } else if !partial.bytes.is_empty() {
            let whole = std::mem::take(&mut partial.bytes);
            self.line(&whole, from_capture);
        }
        *partial = LineBuffer::default();
    }
}

/// The unfinished last line of a key log being read.
#[derive(Debug, Default)]
struct LineBuffer {
    bytes: Zeroizing<Vec<u8>>,
    /// The line is longer than LINE_MAX: skip to its newline.
    overlong: bool,
}

/// Reads a key log file from where it stopped last time: new lines a proxy
/// appended, a partial last line kept for later, and a file truncated or
/// replaced (new inode, or shorter than what was read) read again from its
/// start.
#[derive(Debug)]
struct Follower {
    path: PathBuf,
    file: Option<File>,
    /// (device, inode) of the open file.
    identity: Option<(u64, u64)>,
    offset: u64,
    partial: LineBuffer,
    last_miss_poll: Option<Instant>,
}

impl Follower {
    fn new(path: &Path) -> Self {
        Follower {
            path: path.to_path_buf(),
            file: None,
            identity: None,
            offset: 0,
            partial: LineBuffer::default(),
            last_miss_poll: None,
        }
    }

    /// Read what is new into `table` (at most `POLL_BYTES_MAX`, in chunks;
    /// the lock is taken per chunk). Returns whether bytes are left to
    /// read. Errors are returned to the caller; what was read stays read,
    /// so the next poll goes on from there.
    fn poll(&mut self, table: &RwLock<SharedTable>) -> io::Result<bool> {
        let meta = std::fs::metadata(&self.path)?;
        if !meta.is_file() {
            return Err(io::Error::other("not a regular file"));
        }
        let identity = (meta.dev(), meta.ino());
        if self.identity != Some(identity) || meta.len() < self.offset {
            let file = File::open(&self.path)?;
            if self.identity.is_some() {
                write(table).0.counters.reopened += 1;
            }
            self.file = Some(file);
            self.identity = Some(identity);
            self.offset = 0;
            self.partial = LineBuffer::default();
        }
        let Some(file) = self.file.as_mut() else {
            return Ok(false);
        };
        if meta.len() <= self.offset {
            return Ok(false);
        }
        file.seek(SeekFrom::Start(self.offset))?;
        let want = (meta.len() - self.offset).min(POLL_BYTES_MAX);
        let mut chunk = Zeroizing::new(vec![0u8; CHUNK]);
        let mut left = want;
        while left > 0 {
            let n = usize::try_from(left).map_or(CHUNK, |l| l.min(CHUNK));
            let got = file.read(chunk.get_mut(..n).unwrap_or_default())?;
            if got == 0 {
                break;
            }
            self.offset += got as u64;
            left -= got as u64;
            let bytes = chunk.get(..got).unwrap_or_default();
            write(table).0.text(&mut self.partial, bytes, false);
        }
        Ok(left == 0 && meta.len() > self.offset)
    }
}

/// The table behind its lock (a newtype so the lock helpers stay short).
#[derive(Debug)]
struct SharedTable(SecretTable);

fn write(t: &RwLock<SharedTable>) -> std::sync::RwLockWriteGuard<'_, SharedTable> {
    // A worker that panicked while holding the lock left a table that is
    // still consistent (every update is one insert): go on with it.
    t.write().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn read(t: &RwLock<SharedTable>) -> std::sync::RwLockReadGuard<'_, SharedTable> {
    t.read().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The key log store shared by the workers: look up a client random's
/// secrets; in live mode, follow the file as it grows.
pub struct KeyLog {
    table: RwLock<SharedTable>,
    follower: Option<Mutex<Follower>>,
}

impl fmt::Debug for KeyLog {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyLog")
            .field("clients", &read(&self.table).0.by_random.len())
            .field("following", &self.follower.is_some())
            .finish()
    }
}

impl KeyLog {
    /// An empty store holding at most `budget` bytes of secrets (and the
    /// table that finds them).
    pub fn new(budget: usize) -> Self {
        KeyLog {
            table: RwLock::new(SharedTable(SecretTable::new(budget))),
            follower: None,
        }
    }

    /// Heap bytes the table holds now (never more than its budget).
    pub fn bytes(&self) -> usize {
        read(&self.table).0.bytes()
    }

    /// Whether the key log file is followed (it may grow to its budget).
    pub fn is_following(&self) -> bool {
        self.follower.is_some()
    }

    /// Read the key log at `path` now. With `follow`, remember where
    /// reading stopped so `poll` picks up lines appended later (live
    /// capture); without, an unfinished last line counts as a line. An
    /// unreadable file is the one error: the run cannot do what was asked.
    pub fn load_file(&mut self, path: &Path, follow: bool) -> io::Result<()> {
        let mut follower = Follower::new(path);
        // The whole file now, in polls of at most POLL_BYTES_MAX.
        while follower.poll(&self.table)? {}
        if follow {
            self.follower = Some(Mutex::new(follower));
        } else {
            write(&self.table).0.flush(&mut follower.partial, false);
        }
        Ok(())
    }

    /// Key log text embedded in the capture (one pcapng DSB's).
    pub fn add_capture_text(&self, text: &[u8]) {
        let mut partial = LineBuffer::default();
        let mut t = write(&self.table);
        t.0.text(&mut partial, text, true);
        t.0.flush(&mut partial, true);
    }

    /// One Decryption Secrets Block's text met in a stream (stdin), held to
    /// the budget as `add_capture_file` holds a file's.
    pub fn add_capture_block(&self, text: &[u8]) {
        let budget = read(&self.table).0.budget;
        if text.len() > budget {
            write(&self.table).0.counters.dsb_over_budget += 1;
        }
        self.add_capture_text(text);
    }

    /// Read the TLS secrets of every Decryption Secrets Block of the
    /// pcapng at `path` (see `scan_capture_secrets`) in chunks; returns
    /// whether there was any.
    pub fn add_capture_file(&self, path: &Path) -> bool {
        let mut partial = LineBuffer::default();
        let budget = read(&self.table).0.budget as u64;
        scan_capture_secrets(path, |piece| match piece {
            Dsb::Start(len) => {
                if len > budget {
                    write(&self.table).0.counters.dsb_over_budget += 1;
                }
            }
            Dsb::Text(bytes) => write(&self.table).0.text(&mut partial, bytes, true),
            Dsb::End => write(&self.table).0.flush(&mut partial, true),
        })
    }

    /// Pick up lines appended to the followed key log (no-op when not
    /// following). Called by the capture thread at every tick.
    pub fn poll(&self) {
        let Some(follower) = &self.follower else {
            return;
        };
        let Ok(mut f) = follower.lock() else {
            return;
        };
        if f.poll(&self.table).is_err() {
            write(&self.table).0.counters.read_errors += 1;
        }
    }

    /// The secrets known for a client random. On a miss while following,
    /// the file is read again first (at most every 50 ms, and never
    /// waiting for another thread that is reading it).
    pub fn lookup(&self, random: &[u8]) -> Option<FlowSecrets> {
        let key: [u8; RANDOM_LEN] = random.try_into().ok()?;
        if let Some(found) = read(&self.table).0.by_random.get(&key) {
            return Some(found.clone());
        }
        let follower = self.follower.as_ref()?;
        {
            let Ok(mut f) = follower.try_lock() else {
                return None;
            };
            if f.last_miss_poll
                .is_some_and(|t| t.elapsed() < MISS_POLL_INTERVAL)
            {
                return None;
            }
            f.last_miss_poll = Some(Instant::now());
            if f.poll(&self.table).is_err() {
                write(&self.table).0.counters.read_errors += 1;
            }
        }
        read(&self.table).0.by_random.get(&key).cloned()
    }

    /// Whether any secret is known (or may become known: following).
    pub fn is_useful(&self) -> bool {
        self.follower.is_some() || !read(&self.table).0.by_random.is_empty()
    }

    pub fn counters(&self) -> KeyLogCounters {
        read(&self.table).0.counters.clone()
    }
}

/// The key log store for a run: `--keylog FILE` read now (followed when
/// `follow`: live capture), plus the secrets of a pcapng input file's
/// Decryption Secrets Blocks, holding at most `budget` bytes (an eighth of
/// `--memory`: `pipeline::secrets_budget`). None when there is neither.
/// The error (an unreadable key log) is one line for the user.
pub fn for_run(
    keylog: Option<&Path>,
    capture_file: Option<&Path>,
    follow: bool,
    budget: usize,
) -> Result<Option<KeyLog>, String> {
    let mut store = KeyLog::new(budget);
    if let Some(path) = keylog {
        store
            .load_file(path, follow)
            .map_err(|e| format!("cannot read the key log {}: {e}", path.display()))?;
    }
    let embedded = capture_file
        .filter(|p| p.as_os_str() != "-")
        .is_some_and(|p| store.add_capture_file(p));
    Ok((keylog.is_some() || embedded).then_some(store))
}

/// What `scan_capture_secrets` hands its caller, block by block.
enum Dsb<'a> {
    /// A TLS secrets DSB of this many bytes begins.
    Start(u64),
    /// Its next bytes (at most `CHUNK`).
    Text(&'a [u8]),
    /// It ended.
    End,
}

/// Hand `len` bytes of `r` to `found` in chunks of at most `CHUNK` (wiped
/// after use). False when the file ends first.
fn read_chunks(r: &mut impl Read, len: u64, found: &mut impl FnMut(Dsb<'_>)) -> bool {
    let mut chunk = Zeroizing::new(vec![0u8; CHUNK]);
    let mut left = len;
    while left > 0 {
        let n = usize::try_from(left).map_or(CHUNK, |l| l.min(CHUNK));
        let Some(buf) = chunk.get_mut(..n) else {
            return false;
        };
        if r.read_exact(buf).is_err() {
            return false;
        }
        found(Dsb::Text(buf));
        left -= n as u64;
    }
    true
}

/// The TLS key log text of every Decryption Secrets Block (pcapng §4.7,
/// secrets type 0x544c534b) in the pcapng file at `path`, up to 64 MiB in
/// all, handed to `found` in chunks: no block is held whole. Not pcapng,
/// or damaged: what was found so far (the capture reader reports damage).
/// Other blocks are skipped by length, never read. Returns whether any
/// such block was found.
fn scan_capture_secrets(path: &Path, mut found: impl FnMut(Dsb<'_>)) -> bool {
    let mut any = false;
    let Ok(file) = File::open(path) else {
        return any;
    };
    let mut r = io::BufReader::new(file);
    let mut little_endian = true;
    let mut total = 0u64;
    let mut first = true;
    loop {
        let mut head = [0u8; 8];
        if r.read_exact(&mut head).is_err() {
            break;
        }
        let [a, b, c, d, e, f, g, h] = head;
        let raw_type = u32::from_le_bytes([a, b, c, d]);
        if raw_type == PCAPNG_SHB {
            // The byte-order magic follows the length (pcapng §4.1).
            let mut magic = [0u8; 4];
            if r.read_exact(&mut magic).is_err() {
                break;
            }
            little_endian = magic == [0x4d, 0x3c, 0x2b, 0x1a];
            if !little_endian && magic != [0x1a, 0x2b, 0x3c, 0x4d] {
                break;
            }
        } else if first {
            break; // not pcapng
        }
        first = false;
        let num = |x: [u8; 4]| {
            if little_endian {
                u32::from_le_bytes(x)
            } else {
                u32::from_be_bytes(x)
            }
        };
        let block_type = num([a, b, c, d]);
        let block_len = u64::from(num([e, f, g, h]));
        if block_len < 12 || !block_len.is_multiple_of(4) {
            break;
        }
        let mut consumed = if block_type == PCAPNG_SHB { 12 } else { 8 };
        if block_type == PCAPNG_DSB && block_len >= 20 {
            let mut fields = [0u8; 8];
            if r.read_exact(&mut fields).is_err() {
                break;
            }
            consumed += 8;
            let [s0, s1, s2, s3, l0, l1, l2, l3] = fields;
            let secrets_type = num([s0, s1, s2, s3]);
            let len = u64::from(num([l0, l1, l2, l3]));
            if secrets_type == SECRETS_TYPE_TLS
                && len <= block_len - 20
                && total + len <= CAPTURE_SECRETS_MAX
            {
                any = true;
                found(Dsb::Start(len));
                let whole = read_chunks(&mut r, len, &mut found);
                found(Dsb::End);
                if !whole {
                    break;
                }
                consumed += len;
                total += len;
            }
        }
        let Some(rest) = block_len.checked_sub(consumed) else {
            break;
        };
        if r.seek_relative(rest as i64).is_err() {
            break;
        }
    }
    any
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use std::io::Write;

    const R1: &str = "0101010101010101010101010101010101010101010101010101010101010101";
    const S32: &str = "2222222222222222222222222222222222222222222222222222222222222222";

    fn random(byte: u8) -> [u8; 32] {
        [byte; 32]
    }

    #[test]
    fn lines_are_parsed_and_hostile_ones_counted() {
        let ok = format!("CLIENT_HANDSHAKE_TRAFFIC_SECRET {R1} {S32}");
        match parse_line(ok.as_bytes()) {
            Line::Secret {
                label,
                random: r,
                secret,
            } => {
                assert_eq!(label, Label::ClientHandshake);
                assert_eq!(r, random(1));
                assert_eq!(secret.bytes(), &[0x22; 32]);
            }
            other => panic!("{other:?}"),
        }
        // CRLF line ends (a key log written on Windows).
        assert!(matches!(
            parse_line(format!("{ok}\r").as_bytes()),
            Line::Secret { .. }
        ));
        assert_eq!(parse_line(b"# SSL/TLS secrets log file"), Line::Blank);
        assert_eq!(parse_line(b"   "), Line::Blank);
        assert_eq!(
            parse_line(format!("EXPORTER_SECRET {R1} {S32}").as_bytes()),
            Line::Unused
        );
        assert_eq!(
            parse_line(format!("SOME_FUTURE_LABEL {R1} {S32}").as_bytes()),
            Line::Unused
        );
        let bad = [
            format!("CLIENT_HANDSHAKE_TRAFFIC_SECRET {R1}"), // missing field
            format!("CLIENT_HANDSHAKE_TRAFFIC_SECRET {R1} {S32} extra"),
            format!("CLIENT_HANDSHAKE_TRAFFIC_SECRET {} {S32}", &R1[..62]), // short random
            format!("CLIENT_HANDSHAKE_TRAFFIC_SECRET {R1} zz{}", &S32[2..]), // bad hex
            format!("CLIENT_HANDSHAKE_TRAFFIC_SECRET {R1} {}", &S32[..40]), // 20-byte secret
            format!("CLIENT_RANDOM {R1} {S32}"), // a master secret is 48 bytes
            format!("client_random {R1} {S32}"), // not a label
        ];
        for line in &bad {
            assert_eq!(parse_line(line.as_bytes()), Line::Malformed, "{line}");
        }
        assert_eq!(parse_line(&[0xff, 0xfe, b' ']), Line::Malformed);
    }

    #[test]
    fn table_counts_duplicates_conflicts_and_evicts_oldest() {
        // Room for two randoms with one 32-byte secret each.
        let mut t = SecretTable::new(map_bytes(3) + 4 * RANDOM_LEN + 2 * 32);
        let mut p = LineBuffer::default();
        let other = "33".repeat(32);
        let text = format!(
            "# comment\r\nSERVER_HANDSHAKE_TRAFFIC_SECRET {R1} {S32}\n\
             SERVER_HANDSHAKE_TRAFFIC_SECRET {R1} {S32}\n\
             SERVER_HANDSHAKE_TRAFFIC_SECRET {R1} {other}\n\
             EXPORTER_SECRET {R1} {S32}\nnot a line\n"
        );
        t.text(&mut p, text.as_bytes(), false);
        let c = &t.counters;
        assert_eq!(
            (
                c.lines,
                c.secrets,
                c.duplicate,
                c.conflicting,
                c.unused,
                c.malformed
            ),
            (6, 1, 1, 1, 1, 1)
        );
        // First wins.
        let known = t.by_random[&random(1)].server_handshake.clone().unwrap();
        assert_eq!(known.bytes(), &[0x22; 32]);
        for b in [2u8, 3] {
            let line = format!(
                "CLIENT_HANDSHAKE_TRAFFIC_SECRET {} {S32}\n",
                hex::encode([b; 32])
            );
            t.text(&mut p, line.as_bytes(), false);
        }
        assert_eq!(t.by_random.len(), 2);
        assert!(!t.by_random.contains_key(&random(1)), "oldest evicted");
        assert_eq!(t.counters.dropped, 1);
    }

    fn put(t: &mut SecretTable, label: &str, byte: u8, len: usize) {
        let line = format!("{label} {} {}\n", hex::encode([byte; 32]), "22".repeat(len));
        let mut p = LineBuffer::default();
        t.text(&mut p, line.as_bytes(), false);
    }

    #[test]
    fn bytes_are_counted_exactly_and_the_oldest_go_first() {
        // A slot is a random and five optional secrets (boxed slices).
        assert_eq!(std::mem::size_of::<([u8; 32], FlowSecrets)>(), 112);
        assert_eq!(
            (map_bytes(0), map_bytes(3), map_bytes(7)),
            (0, 4 * 113 + 16, 8 * 113 + 16)
        );
        assert_eq!(map_bytes(14), 16 * 113 + 16);
        let mut t = SecretTable::new(usize::MAX);
        for b in 1..=5 {
            put(&mut t, "CLIENT_HANDSHAKE_TRAFFIC_SECRET", b, 32);
        }
        // The table grew 3 -> 7 slots, the order 4 -> 8 randoms.
        assert_eq!((t.by_random.capacity(), t.map_cap), (7, 7));
        assert_eq!(grown_map_capacity(7), 14);
        assert_eq!(t.order.capacity(), 8);
        let full = map_bytes(7) + 8 * 32 + 5 * 32;
        assert_eq!(t.bytes(), full);
        // Now exactly at its budget: a 48-byte secret for a new random
        // makes the two oldest go (32 bytes each).
        t.budget = full;
        put(&mut t, "SERVER_HANDSHAKE_TRAFFIC_SECRET", 6, 48);
        let held = |t: &SecretTable| t.order.iter().map(|r| r[0]).collect::<Vec<_>>();
        assert_eq!(held(&t), [3, 4, 5, 6]);
        assert_eq!(t.counters.dropped, 2);
        assert_eq!(t.bytes(), full - 64 + 48);
        assert_eq!(t.by_random.len(), 4);
        // A second secret for the oldest random never evicts it: the next
        // oldest goes instead.
        put(&mut t, "CLIENT_RANDOM", 3, 48);
        assert_eq!(held(&t), [3, 5, 6]);
        assert!(t.by_random[&random(3)].master.is_some());
        assert_eq!(t.bytes(), full - 96 + 96);
        assert!(t.bytes() <= t.budget);
        // A secret that cannot fit even alone is dropped, nothing else.
        let mut tiny = SecretTable::new(10);
        put(&mut tiny, "CLIENT_RANDOM", 1, 48);
        assert_eq!(
            (tiny.bytes(), tiny.counters.dropped, tiny.counters.secrets),
            (0, 1, 0)
        );
        // Duplicates and conflicts cost nothing.
        let before = t.bytes();
        put(&mut t, "CLIENT_RANDOM", 3, 48);
        assert_eq!((t.bytes(), t.counters.duplicate), (before, 1));
    }

    /// A key log many times its budget, read through the file reader:
    /// never over, the newest kept, the oldest counted.
    #[test]
    fn a_large_key_log_is_held_to_its_budget() {
        let path = temp_path("large");
        let mut f = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
        for i in 0u32..20_000 {
            let mut r = [0u8; 32];
            r[..4].copy_from_slice(&i.to_be_bytes());
            writeln!(
                f,
                "CLIENT_HANDSHAKE_TRAFFIC_SECRET {} {S32}",
                hex::encode(r)
            )
            .unwrap();
            writeln!(
                f,
                "SERVER_HANDSHAKE_TRAFFIC_SECRET {} {S32}",
                hex::encode(r)
            )
            .unwrap();
        }
        drop(f);
        let budget = 256 * 1024;
        let mut k = KeyLog::new(budget);
        k.load_file(&path, false).unwrap();
        let _ = std::fs::remove_file(&path);
        assert!(
            k.bytes() <= budget && k.bytes() > budget / 2,
            "{}",
            k.bytes()
        );
        let c = k.counters();
        assert_eq!(c.lines, 40_000);
        assert!(c.dropped > 15_000, "{c:?}");
        let mut last = [0u8; 32];
        last[..4].copy_from_slice(&19_999u32.to_be_bytes());
        let newest = k.lookup(&last).unwrap();
        assert!(newest.client_handshake.is_some() && newest.server_handshake.is_some());
        assert!(k.lookup(&[0u8; 32]).is_none(), "the oldest went first");
    }

    #[test]
    fn partial_and_overlong_lines() {
        let mut t = SecretTable::new(DEFAULT_BUDGET);
        let mut p = LineBuffer::default();
        let line = format!("CLIENT_HANDSHAKE_TRAFFIC_SECRET {R1} {S32}\n");
        let (a, b) = line.split_at(40);
        t.text(&mut p, a.as_bytes(), false);
        assert_eq!(t.counters.lines, 0, "an unfinished line waits");
        t.text(&mut p, b.as_bytes(), false);
        assert_eq!((t.counters.lines, t.counters.secrets), (1, 1));
        t.text(&mut p, &vec![b'A'; 3000], false);
        t.text(&mut p, b"AAAA\nCLIENT_RANDOM", false);
        assert_eq!(
            t.counters.malformed, 1,
            "overlong line skipped to its newline"
        );
        assert!(p.bytes.len() <= LINE_MAX);
        t.flush(&mut p, false);
        assert_eq!(
            t.counters.malformed, 2,
            "unfinished last line of a whole file"
        );
    }

    fn temp_path(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("mtlsniff-keylog-{}-{name}", std::process::id()));
        let _ = std::fs::remove_file(&dir);
        dir
    }

    #[test]
    fn follower_picks_up_appends_truncation_and_replacement() {
        let path = temp_path("follow");
        let line = |b: u8| {
            format!(
                "CLIENT_HANDSHAKE_TRAFFIC_SECRET {} {S32}\n",
                hex::encode([b; 32])
            )
        };
        std::fs::write(&path, line(1)).unwrap();
        let mut k = KeyLog::new(DEFAULT_BUDGET);
        k.load_file(&path, true).unwrap();
        assert!(k.lookup(&random(1)).is_some());
        // Appended, the last line unfinished.
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        let two = line(2);
        f.write_all(&two.as_bytes()[..30]).unwrap();
        k.poll();
        assert!(k.lookup(&random(2)).is_none());
        f.write_all(&two.as_bytes()[30..]).unwrap();
        k.poll();
        assert!(k.lookup(&random(2)).is_some());
        // Truncated and rewritten (shorter than what was read).
        std::fs::write(&path, line(3)).unwrap();
        k.poll();
        assert!(k.lookup(&random(3)).is_some());
        // Replaced by a new file (rename over it).
        let tmp = temp_path("follow-new");
        std::fs::write(&tmp, format!("{}{}", line(4), line(5))).unwrap();
        std::fs::rename(&tmp, &path).unwrap();
        k.poll();
        assert!(k.lookup(&random(5)).is_some());
        assert!(k.counters().reopened >= 2);
        // Gone for a moment: counted, not fatal; the secrets stay.
        std::fs::remove_file(&path).unwrap();
        k.poll();
        assert_eq!(k.counters().read_errors, 1);
        assert!(k.lookup(&random(1)).is_some());
        // Unreadable at start is an error.
        assert!(KeyLog::new(1).load_file(&path, false).is_err());
        assert!(
            KeyLog::new(1)
                .load_file(&std::env::temp_dir(), false)
                .is_err()
        );
    }

    #[test]
    fn debug_never_shows_a_secret() {
        let s = Secret(Zeroizing::new(vec![0xab; 32].into_boxed_slice()));
        let shown = format!(
            "{:?}",
            FlowSecrets {
                client_handshake: Some(s),
                ..FlowSecrets::default()
            }
        );
        assert!(!shown.contains("ab") && !shown.contains("171"), "{shown}");
    }

    #[test]
    fn pcapng_decryption_secrets_blocks_are_read() {
        fn block(t: u32, body: &[u8]) -> Vec<u8> {
            let len = (12 + body.len()) as u32;
            let mut v = t.to_le_bytes().to_vec();
            v.extend_from_slice(&len.to_le_bytes());
            v.extend_from_slice(body);
            v.extend_from_slice(&len.to_le_bytes());
            v
        }
        let mut shb = vec![0x4d, 0x3c, 0x2b, 0x1a, 1, 0, 0, 0];
        shb.extend_from_slice(&u64::MAX.to_le_bytes());
        let text = format!("CLIENT_RANDOM {R1} {}\n", "44".repeat(48));
        let mut dsb = SECRETS_TYPE_TLS.to_le_bytes().to_vec();
        dsb.extend_from_slice(&(text.len() as u32).to_le_bytes());
        dsb.extend_from_slice(text.as_bytes());
        while !dsb.len().is_multiple_of(4) {
            dsb.push(0);
        }
        let mut other = 0x1234_5678u32.to_le_bytes().to_vec(); // not TLS secrets
        other.extend_from_slice(&4u32.to_le_bytes());
        other.extend_from_slice(b"abcd");
        let mut file = block(PCAPNG_SHB, &shb);
        file.extend(block(1, &[1, 0, 0, 0, 0, 0, 4, 0])); // an IDB
        file.extend(block(PCAPNG_DSB, &other));
        file.extend(block(PCAPNG_DSB, &dsb));
        let path = temp_path("dsb.pcapng");
        std::fs::write(&path, &file).unwrap();
        let k = KeyLog::new(DEFAULT_BUDGET);
        assert!(k.add_capture_file(&path));
        assert!(k.lookup(&random(1)).unwrap().master.is_some());
        assert_eq!(k.counters().capture_secrets, 1);
        assert_eq!(k.counters().dsb_over_budget, 0);
        // A block larger than the whole budget is counted, and read.
        let small = KeyLog::new(text.len() - 1);
        assert!(small.add_capture_file(&path));
        assert_eq!(small.counters().dsb_over_budget, 1);
        // A lying block length stops the scan without a panic.
        let mut bad = block(PCAPNG_SHB, &shb);
        bad.extend_from_slice(&PCAPNG_DSB.to_le_bytes());
        bad.extend_from_slice(&7u32.to_le_bytes());
        std::fs::write(&path, &bad).unwrap();
        assert!(!KeyLog::new(DEFAULT_BUDGET).add_capture_file(&path));
        // A classic pcap has none.
        std::fs::write(&path, [0xd4, 0xc3, 0xb2, 0xa1, 2, 0, 4, 0]).unwrap();
        assert!(!KeyLog::new(DEFAULT_BUDGET).add_capture_file(&path));
        let _ = std::fs::remove_file(&path);
    }
}
