//! Connect-time balancing: the balancer's fast path. A BPF program on kubesup's cgroup
//! (`cgroup/connect4`) rewrites a `connect()` to the balancer's own address into a connect to a
//! healthy API server, so that kubelet, kube-proxy and kubesup itself talk to the API server
//! directly, with no process in between. The user-space proxy stays, and takes every
//! connection the program passes over.
//!
//! Why: proxying costs each request two wake-ups of kubesup on the way, which on shared cores
//! is a quarter of `GET /version`'s throughput (README, "The load balancer's cost"); moving the
//! copy into the kernel (sockmap) measured no better, because the kernel hands redirected
//! segments to a worker thread. Choosing the backend once, at connect, costs nothing per
//! request. This is how Cilium balances services at the socket (its "socket LB").
//!
//! What the program rewrites, and nothing else:
//! - an IPv4 TCP connect to exactly the balancer's `127.0.0.1:port`,
//! - made in kubesup's own network namespace (its cookie is compiled into the program: the
//!   same cgroup may hold processes of other namespaces, such as pods or other test nodes),
//! - from a socket not bound to an address of its own (a bound loopback source could not
//!   reach another host; such a client stays on the proxy, and so can a benchmark),
//! - by a process in kubesup's cgroup or below it (its children; everything else reaches the
//!   proxy),
//! - while at least one backend is healthy. It picks one of them by the connecting process's
//!   PID, and notes the socket's cookie in an LRU map, so that kubesup can later close exactly
//!   the connections it redirected.
//!
//! Why by process: every connection of one process goes to the same API server, which holds
//! its TLS session, so a client that reconnects (kubesup's own feed, every 30 s) resumes it
//! instead of paying a full handshake (2.3 ms on the HA test bed; the proxy keeps ties on its
//! last pick for the same reason), and one API server's caches stay warm for it. The
//! processes of a node, and the nodes of a cluster, still spread over the masters: the PID is
//! offset by a number drawn at each start, since identical machines give their kubelets the
//! same PID, and would otherwise all send them to one master. When the healthy set changes,
//! every process's choice is made again.
//!
//! Health stays the proxy's: [`Redirect::sync`] is given the healthy backends after every
//! change. A backend that leaves that set (down, or gone from the list) is removed from the
//! program's choice first, then every connection redirected to it is closed with
//! `SOCK_DESTROY`, so that clients reconnect to a live one, as the proxy's own connections do.
//!
//! Lifetime: the program is attached by a BPF link held here. When kubesup stops or dies, the
//! link closes and the program is gone: no redirect outlives kubesup. Connections already made
//! do (they are the client's own connections to an API server), which the proxy's never did.
//!
//! Anything that fails here (no cgroup v2, no CAP_BPF, a kernel older than 5.14, a locked-down
//! BPF) turns the fast path off with one log line; the proxy serves everything, as before.

use std::io;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::bpf::{self, Insn, Map};
use super::sockdiag::SockDiag;

/// Backends the program chooses among: a power of two, so that an index is bounded by a mask
/// the verifier can follow. The first ones, in address order, when the cluster has more.
pub const MAX_BACKENDS: usize = 16;
/// Redirected connections remembered for closing; the oldest are forgotten first. A node holds
/// a handful of long-lived ones (kubelet's, kube-proxy's), so this is ample.
const REMEMBERED: u32 = 8192;
/// `SO_NETNS_COOKIE` (Linux 5.14), the asm-generic value of x86_64 and aarch64.
const SO_NETNS_COOKIE: libc::c_int = 71;

// Kernel helpers (enum bpf_func_id).
const MAP_LOOKUP_ELEM: i32 = 1;
const MAP_UPDATE_ELEM: i32 = 2;
const GET_CURRENT_PID_TGID: i32 = 14;
const GET_SOCKET_COOKIE: i32 = 46;
const GET_NETNS_COOKIE: i32 = 122;

// Offsets in the program's context, struct bpf_sock_addr, and in struct bpf_sock.
const CTX_USER_IP4: i16 = 4;
const CTX_USER_PORT: i16 = 24;
const CTX_PROTOCOL: i16 = 36;
const CTX_SK: i16 = 64;
const SK_SRC_IP4: i16 = 24;

/// The backends map's one value: a count, then (address, port) pairs, both in network order
/// as the context holds them.
const VALUE_SIZE: usize = 8 + 8 * MAX_BACKENDS;

#[derive(Debug, thiserror::Error)]
pub enum RedirectError {
    #[error("the balancer listens on {0}, not on 127.0.0.1")]
    NotLoopback(SocketAddr),
    #[error("cannot read the balancer's listening address")]
    LocalAddr(#[source] io::Error),
    #[error("cannot read {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("no cgroup v2 hierarchy is mounted, or kubesup's place in it is unknown")]
    NoCgroup2,
    #[error("cannot open cgroup {path}")]
    Cgroup {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot read this network namespace's cookie (SO_NETNS_COOKIE needs Linux 5.14)")]
    NetnsCookie(#[source] io::Error),
    #[error("cannot create the BPF map {name}")]
    Map {
        name: &'static str,
        #[source]
        source: io::Error,
    },
    #[error("the kernel refused the redirect program ({log})")]
    Load {
        log: String,
        #[source]
        source: io::Error,
    },
    #[error("cannot attach the redirect program to cgroup {path}")]
    Attach {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot update the redirect program's backends")]
    Update(#[source] io::Error),
}

/// The attached program and its maps; dropping it detaches the program.
#[derive(Debug)]
pub struct Redirect {
    _link: OwnedFd,
    _prog: OwnedFd,
    backends: Map,
    conns: Arc<Map>,
    cgroup: PathBuf,
    /// What the backends map holds now.
    written: Vec<SocketAddrV4>,
}

/// Closes the connections redirected to backends that left the healthy set; runs on the
/// blocking pool (a netlink dump).
#[derive(Debug)]
pub struct Closer {
    conns: Arc<Map>,
    gone: Vec<SocketAddrV4>,
}

impl Redirect {
    /// Loads the program for the balancer at `listen` (bound in this network namespace; `sock`
    /// is any socket of it, for its cookie) and attaches it to kubesup's cgroup.
    pub fn attach(listen: SocketAddr, sock: &impl AsFd) -> Result<Self, RedirectError> {
        let port = match listen {
            SocketAddr::V4(a) if *a.ip() == Ipv4Addr::LOCALHOST => a.port(),
            other => return Err(RedirectError::NotLoopback(other)),
        };
        let netns = netns_cookie(sock).map_err(RedirectError::NetnsCookie)?;
        let cgroup = own_cgroup()?;
        let dir = std::fs::File::open(&cgroup).map_err(|source| RedirectError::Cgroup {
            path: cgroup.clone(),
            source,
        })?;
        let map = |name, kind, key, value, max| {
            Map::create(kind, key, value, max, name)
                .map_err(|source| RedirectError::Map { name, source })
        };
        let backends = map("kubesup_apilb", bpf::MAP_HASH, 4, VALUE_SIZE as u32, 1)?;
        let conns = map("kubesup_apiconn", bpf::MAP_LRU_HASH, 8, 8, REMEMBERED)?;
        // Non-negative, so that the 64-bit add keeps the sum positive for the modulo.
        let salt = (rand::random::<u32>() >> 1) as i32;
        let insns = program(port, netns, salt, &backends, &conns);
        let prog = bpf::prog_load(
            bpf::PROG_CGROUP_SOCK_ADDR,
            bpf::ATTACH_INET4_CONNECT,
            &insns,
            "kubesup_apilb",
        )
        .map_err(|e| RedirectError::Load {
            // The verifier's verdict is in its last lines.
            log: e.log.lines().rev().take(3).collect::<Vec<_>>().join(" / "),
            source: e.error,
        })?;
        let link = bpf::link_cgroup(prog.as_fd(), dir.as_fd(), bpf::ATTACH_INET4_CONNECT).map_err(
            |source| RedirectError::Attach {
                path: cgroup.clone(),
                source,
            },
        )?;
        Ok(Self {
            _link: link,
            _prog: prog,
            backends,
            conns: Arc::new(conns),
            cgroup,
            written: Vec::new(),
        })
    }

    /// Whether the program passes every connect to the proxy (no healthy backend given).
    pub fn passes_all(&self) -> bool {
        self.written.is_empty()
    }

    /// The cgroup whose processes (and their descendants') connects are redirected.
    pub fn cgroup(&self) -> &Path {
        &self.cgroup
    }

    /// Makes the program choose among `healthy` (IPv4 ones; the first [`MAX_BACKENDS`] in
    /// address order). Returns what must then close the connections redirected to the
    /// backends that left the set, if any left.
    pub fn sync(
        &mut self,
        healthy: impl IntoIterator<Item = SocketAddr>,
    ) -> Result<Option<Closer>, RedirectError> {
        let mut now: Vec<SocketAddrV4> = healthy
            .into_iter()
            .filter_map(|a| match a {
                SocketAddr::V4(a) => Some(a),
                SocketAddr::V6(_) => None,
            })
            .collect();
        now.sort();
        now.dedup();
        now.truncate(MAX_BACKENDS);
        if now == self.written {
            return Ok(None);
        }
        self.backends
            .update(&0u32.to_ne_bytes(), &value(&now))
            .map_err(RedirectError::Update)?;
        let gone: Vec<SocketAddrV4> = self
            .written
            .iter()
            .filter(|a| !now.contains(a))
            .copied()
            .collect();
        self.written = now;
        Ok((!gone.is_empty()).then(|| Closer {
            conns: self.conns.clone(),
            gone,
        }))
    }
}

impl Closer {
    /// Closes every connection the program redirected to a backend that left, and nothing
    /// else: a socket to the same address that the program did not make (another client's
    /// direct connection) is left alone. Returns, per backend, how many were closed.
    pub fn close(self) -> Vec<(SocketAddrV4, io::Result<usize>)> {
        self.gone
            .iter()
            .map(|&addr| (addr, close_redirected(&self.conns, addr)))
            .collect()
    }
}

fn close_redirected(conns: &Map, addr: SocketAddrV4) -> io::Result<usize> {
    // One netlink socket for the dump and every destroy.
    let diag = SockDiag::open()?;
    let mut closed = 0;
    for sock in diag.connected_to(addr)? {
        if conns.lookup(&sock.cookie.to_ne_bytes())?.is_none() {
            continue;
        }
        match diag.destroy(&sock) {
            Ok(()) => closed += 1,
            // Closed meanwhile by its owner.
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(closed)
}

/// The backends map's value for `list` (at most [`MAX_BACKENDS`]).
fn value(list: &[SocketAddrV4]) -> Vec<u8> {
    let mut v = vec![0u8; VALUE_SIZE];
    let n = list.len().min(MAX_BACKENDS);
    v[0..4].copy_from_slice(&(n as u32).to_ne_bytes());
    for (i, a) in list.iter().take(n).enumerate() {
        let at = 8 + 8 * i;
        v[at..at + 4].copy_from_slice(&a.ip().octets());
        v[at + 4..at + 8].copy_from_slice(&u32::from(a.port().to_be()).to_ne_bytes());
    }
    v
}

/// A 32-bit value of the context as the program reads it: network-order bytes in a native
/// word. Only its bit pattern matters to the comparison.
fn ctx_word(bytes: [u8; 4]) -> i32 {
    i32::from_ne_bytes(bytes)
}

/// The program. In C it would read:
///
/// ```c
/// if (ctx->protocol != IPPROTO_TCP || ctx->user_ip4 != 127.0.0.1 || ctx->user_port != PORT
///     || ctx->sk->src_ip4 != 0 || bpf_get_netns_cookie(ctx) != NETNS)
///         return 1;
/// struct backends *b = bpf_map_lookup_elem(&backends, &(u32){0});
/// if (!b || b->n == 0 || b->n > 16)
///         return 1;
/// u32 i = (((bpf_get_current_pid_tgid() >> 32) + SALT) % b->n) & 15;   /* by process */
/// ctx->user_ip4 = b->addr[i].ip;
/// ctx->user_port = b->addr[i].port;
/// u64 cookie = bpf_get_socket_cookie(ctx);
/// bpf_map_update_elem(&conns, &cookie, &b->addr[i], BPF_ANY);
/// return 1;   /* 1: let the connect go on, rewritten or not */
/// ```
fn program(port: u16, netns: u64, salt: i32, backends: &Map, conns: &Map) -> Vec<Insn> {
    use bpf::*;
    // Jumps to the end are written with offset 0 and patched once the end is known.
    let mut p: Vec<Insn> = Vec::new();
    let mut to_end: Vec<usize> = Vec::new();
    let mut skip = |p: &mut Vec<Insn>, i: Insn| {
        to_end.push(p.len());
        p.push(i);
    };
    p.push(alu_reg(MOV, R6, R1));
    p.push(load_w(R2, R6, CTX_PROTOCOL));
    skip(&mut p, jump_imm(JNE, R2, libc::IPPROTO_TCP, 0));
    p.push(load_w(R2, R6, CTX_USER_IP4));
    skip(
        &mut p,
        jump_imm(JNE, R2, ctx_word(Ipv4Addr::LOCALHOST.octets()), 0),
    );
    p.push(load_w(R2, R6, CTX_USER_PORT));
    skip(
        &mut p,
        jump_imm(JNE, R2, ctx_word(u32::from(port.to_be()).to_ne_bytes()), 0),
    );
    // ctx->sk is a 64-bit pointer field; the verifier types it as a socket.
    p.push(load_dw(R2, R6, CTX_SK));
    p.push(load_w(R3, R2, SK_SRC_IP4));
    skip(&mut p, jump_imm(JNE, R3, 0, 0));
    p.push(alu_reg(MOV, R1, R6));
    p.push(call(GET_NETNS_COOKIE));
    p.extend(load_imm64(R2, netns));
    skip(&mut p, jump_reg(JNE, R0, R2, 0));
    p.push(store_w_imm(R10, -4, 0));
    p.push(alu_reg(MOV, R2, R10));
    p.push(alu_imm(ADD, R2, -4));
    p.extend(load_map(R1, backends));
    p.push(call(MAP_LOOKUP_ELEM));
    skip(&mut p, jump_imm(JEQ, R0, 0, 0));
    p.push(alu_reg(MOV, R7, R0));
    p.push(load_w(R8, R7, 0));
    skip(&mut p, jump_imm(JEQ, R8, 0, 0));
    skip(&mut p, jump_imm(JGT, R8, MAX_BACKENDS as i32, 0));
    p.push(call(GET_CURRENT_PID_TGID));
    p.push(alu_imm(RSH, R0, 32));
    p.push(alu_imm(ADD, R0, salt));
    p.push(alu_reg(MOD, R0, R8));
    p.push(alu_imm(AND, R0, MAX_BACKENDS as i32 - 1));
    p.push(alu_imm(LSH, R0, 3));
    p.push(alu_reg(ADD, R7, R0));
    p.push(load_w(R2, R7, 8));
    p.push(load_w(R3, R7, 12));
    p.push(store_w(R6, CTX_USER_IP4, R2));
    p.push(store_w(R6, CTX_USER_PORT, R3));
    p.push(store_w(R10, -16, R2));
    p.push(store_w(R10, -12, R3));
    p.push(alu_reg(MOV, R1, R6));
    p.push(call(GET_SOCKET_COOKIE));
    p.push(store_dw(R10, -24, R0));
    p.extend(load_map(R1, conns));
    p.push(alu_reg(MOV, R2, R10));
    p.push(alu_imm(ADD, R2, -24));
    p.push(alu_reg(MOV, R3, R10));
    p.push(alu_imm(ADD, R3, -16));
    p.push(alu_imm(MOV, R4, 0));
    p.push(call(MAP_UPDATE_ELEM));
    let end = p.len();
    p.push(alu_imm(MOV, R0, 1));
    p.push(exit());
    for i in to_end {
        let off = i16::try_from(end - i - 1).unwrap_or(i16::MAX);
        if let Some(insn) = p.get_mut(i) {
            *insn = insn.with_off(off);
        }
    }
    p
}

fn netns_cookie(sock: &impl AsFd) -> io::Result<u64> {
    let mut cookie = 0u64;
    let mut len = std::mem::size_of::<u64>() as libc::socklen_t;
    // SAFETY: the descriptor is a live socket; the kernel writes at most `len` (8) bytes into
    // `cookie` and updates `len`.
    #[allow(unsafe_code, reason = "nix has no SO_NETNS_COOKIE option")]
    let r = unsafe {
        libc::getsockopt(
            sock.as_fd().as_raw_fd(),
            libc::SOL_SOCKET,
            SO_NETNS_COOKIE,
            std::ptr::from_mut(&mut cookie).cast(),
            &mut len,
        )
    };
    if r == 0 {
        Ok(cookie)
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Where kubesup's own cgroup v2 is: the cgroup2 mount (`/sys/fs/cgroup`, or
/// `/sys/fs/cgroup/unified` on a hybrid host) joined with the path in `/proc/self/cgroup`.
fn own_cgroup() -> Result<PathBuf, RedirectError> {
    let read = |p: &str| {
        std::fs::read_to_string(p).map_err(|source| RedirectError::Read {
            path: p.into(),
            source,
        })
    };
    cgroup2_path(&read("/proc/self/mountinfo")?, &read("/proc/self/cgroup")?)
        .ok_or(RedirectError::NoCgroup2)
}

/// From mountinfo's cgroup2 line (its root within the hierarchy, its mount point) and the
/// `0::PATH` line of /proc/self/cgroup.
fn cgroup2_path(mountinfo: &str, cgroup: &str) -> Option<PathBuf> {
    let own = cgroup.lines().find_map(|l| l.strip_prefix("0::"))?;
    let (root, point) = mountinfo.lines().find_map(|l| {
        let (mount, fs) = l.split_once(" - ")?;
        if fs.split_whitespace().next()? != "cgroup2" {
            return None;
        }
        let f: Vec<&str> = mount.split_whitespace().collect();
        Some((*f.get(3)?, *f.get(4)?))
    })?;
    let rel = own.strip_prefix(root).unwrap_or(own);
    Some(Path::new(point).join(rel.trim_start_matches('/')))
}

#[cfg(test)]
pub(super) mod tests;
