//! Finding and closing TCP connections of other processes in kubesup's network namespace, as
//! `ss -K` does: a `sock_diag` dump of the IPv4 TCP sockets, then `SOCK_DESTROY` of chosen
//! ones by address and cookie (Linux 4.5, `CONFIG_INET_DIAG_DESTROY`; needs CAP_NET_ADMIN).
//!
//! The messages are built and parsed here rather than with a netlink crate: two fixed-layout
//! structs (`inet_diag_req_v2`, `inet_diag_msg`, `include/uapi/linux/inet_diag.h`) are all it
//! takes, and the socket itself is nix's.

use std::io;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::os::fd::{AsRawFd, OwnedFd};
use std::time::Duration;

use nix::sys::socket::{
    AddressFamily, MsgFlags, NetlinkAddr, SockFlag, SockProtocol, SockType, recv, sendto,
    setsockopt, socket, sockopt,
};
use nix::sys::time::TimeVal;

const NLMSG_HDR: usize = 16;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_ACK: u16 = 0x4;
const NLM_F_DUMP: u16 = 0x300;
const SOCK_DIAG_BY_FAMILY: u16 = 20;
const SOCK_DESTROY: u16 = 21;
/// `struct inet_diag_sockid`: ports, addresses, interface, cookie.
const SOCKID: usize = 48;
/// `struct inet_diag_msg`: family, state, timer, retrans, the sockid, then five u32s.
const DIAG_MSG: usize = 4 + SOCKID + 20;
/// The TCP states of a connection that still has an owner: ESTABLISHED, SYN_SENT, SYN_RECV,
/// FIN_WAIT1, FIN_WAIT2, CLOSE_WAIT, LAST_ACK, CLOSING. Not TIME_WAIT or CLOSE (nobody reads
/// them any more), nor LISTEN (no peer).
const STATES: u32 =
    (1 << 1) | (1 << 2) | (1 << 3) | (1 << 4) | (1 << 5) | (1 << 8) | (1 << 9) | (1 << 11);
/// A dump or an answer that takes longer than this is an error, not a hang of the caller.
const RECV_TIMEOUT: Duration = Duration::from_secs(2);

/// One TCP socket as the dump describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sock {
    pub src: SocketAddrV4,
    pub dst: SocketAddrV4,
    pub cookie: u64,
    /// The dump's `inet_diag_sockid`, handed back as is to destroy this very socket.
    id: [u8; SOCKID],
}

/// A `sock_diag` netlink socket: one dump, then any number of destroys, one after the other.
pub struct SockDiag(OwnedFd);

/// A request: the netlink header and an `inet_diag_req_v2` for IPv4 TCP with `id`.
fn request(kind: u16, flags: u16, seq: u32, id: &[u8; SOCKID]) -> Vec<u8> {
    let len = NLMSG_HDR + 8 + SOCKID;
    let mut m = Vec::with_capacity(len);
    m.extend_from_slice(&u32::try_from(len).unwrap_or(0).to_ne_bytes());
    m.extend_from_slice(&kind.to_ne_bytes());
    m.extend_from_slice(&flags.to_ne_bytes());
    m.extend_from_slice(&seq.to_ne_bytes());
    m.extend_from_slice(&0u32.to_ne_bytes());
    m.extend_from_slice(&[libc::AF_INET as u8, libc::IPPROTO_TCP as u8, 0, 0]);
    m.extend_from_slice(&STATES.to_ne_bytes());
    m.extend_from_slice(id);
    m
}

/// Each message of `buf` as (type, payload).
fn messages(buf: &[u8]) -> impl Iterator<Item = (u16, &[u8])> {
    let mut rest = buf;
    std::iter::from_fn(move || {
        let len = u32::from_ne_bytes(rest.get(0..4)?.try_into().ok()?) as usize;
        let kind = u16::from_ne_bytes(rest.get(4..6)?.try_into().ok()?);
        let body = rest.get(NLMSG_HDR..len)?;
        // Messages are padded to 4 bytes.
        rest = rest.get(len.next_multiple_of(4)..).unwrap_or(&[]);
        Some((kind, body))
    })
}

fn error_of(body: &[u8]) -> io::Result<()> {
    let code = body
        .get(0..4)
        .and_then(|b| b.try_into().ok())
        .map_or(-libc::EPROTO, i32::from_ne_bytes);
    if code == 0 {
        Ok(())
    } else {
        Err(io::Error::from_raw_os_error(-code))
    }
}

fn v4(port: &[u8], addr: &[u8]) -> Option<SocketAddrV4> {
    let port = u16::from_be_bytes(port.try_into().ok()?);
    let ip: [u8; 4] = addr.get(0..4)?.try_into().ok()?;
    Some(SocketAddrV4::new(Ipv4Addr::from(ip), port))
}

fn parse(msg: &[u8]) -> Option<Sock> {
    if msg.len() < DIAG_MSG || msg.first() != Some(&(libc::AF_INET as u8)) {
        return None;
    }
    let id: [u8; SOCKID] = msg.get(4..4 + SOCKID)?.try_into().ok()?;
    let lo = u64::from(u32::from_ne_bytes(id.get(40..44)?.try_into().ok()?));
    let hi = u64::from(u32::from_ne_bytes(id.get(44..48)?.try_into().ok()?));
    Some(Sock {
        src: v4(id.get(0..2)?, id.get(4..20)?)?,
        dst: v4(id.get(2..4)?, id.get(20..36)?)?,
        cookie: lo | (hi << 32),
        id,
    })
}

impl SockDiag {
    pub fn open() -> io::Result<Self> {
        let fd = socket(
            AddressFamily::Netlink,
            SockType::Datagram,
            SockFlag::SOCK_CLOEXEC,
            SockProtocol::NetlinkSockDiag,
        )?;
        setsockopt(
            &fd,
            sockopt::ReceiveTimeout,
            &TimeVal::new(RECV_TIMEOUT.as_secs().try_into().unwrap_or(2), 0),
        )?;
        Ok(Self(fd))
    }

    fn send(&self, msg: &[u8]) -> io::Result<()> {
        sendto(
            self.0.as_raw_fd(),
            msg,
            &NetlinkAddr::new(0, 0),
            MsgFlags::empty(),
        )?;
        Ok(())
    }

    /// The IPv4 TCP sockets of this network namespace connected to `dst`.
    pub fn connected_to(&self, dst: SocketAddrV4) -> io::Result<Vec<Sock>> {
        self.send(&request(
            SOCK_DIAG_BY_FAMILY,
            NLM_F_REQUEST | NLM_F_DUMP,
            1,
            &[0; SOCKID],
        ))?;
        let mut found = Vec::new();
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = recv(self.0.as_raw_fd(), &mut buf, MsgFlags::empty())?;
            if n == 0 {
                return Err(io::Error::from(io::ErrorKind::UnexpectedEof));
            }
            for (kind, body) in messages(buf.get(..n).unwrap_or(&[])) {
                match kind {
                    NLMSG_DONE => return Ok(found),
                    NLMSG_ERROR => error_of(body)?,
                    SOCK_DIAG_BY_FAMILY => {
                        found.extend(parse(body).filter(|s| s.dst == dst));
                    }
                    _ => {}
                }
            }
        }
    }

    /// Closes `sock` as `tcp_abort` does: its owner's next read or write fails with
    /// ECONNABORTED, and the peer gets a reset. A socket that closed meanwhile, or whose
    /// cookie no longer matches (a new socket on the same addresses), is left alone: that is
    /// ENOENT.
    pub fn destroy(&self, sock: &Sock) -> io::Result<()> {
        self.send(&request(
            SOCK_DESTROY,
            NLM_F_REQUEST | NLM_F_ACK,
            2,
            &sock.id,
        ))?;
        let mut buf = vec![0u8; 4096];
        let n = recv(self.0.as_raw_fd(), &mut buf, MsgFlags::empty())?;
        for (kind, body) in messages(buf.get(..n).unwrap_or(&[])) {
            if kind == NLMSG_ERROR {
                return error_of(body);
            }
        }
        Err(io::Error::from(io::ErrorKind::InvalidData))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dump_answer_is_parsed_into_addresses_and_cookie() {
        let mut msg = vec![libc::AF_INET as u8, 1, 0, 0];
        let mut id = [0u8; SOCKID];
        id[0..2].copy_from_slice(&40000u16.to_be_bytes());
        id[2..4].copy_from_slice(&6443u16.to_be_bytes());
        id[4..8].copy_from_slice(&[10, 0, 0, 9]);
        id[20..24].copy_from_slice(&[10, 0, 0, 1]);
        id[40..44].copy_from_slice(&7u32.to_ne_bytes());
        id[44..48].copy_from_slice(&1u32.to_ne_bytes());
        msg.extend_from_slice(&id);
        msg.extend_from_slice(&[0; 20]);
        let s = parse(&msg).unwrap();
        assert_eq!(s.src, "10.0.0.9:40000".parse().unwrap());
        assert_eq!(s.dst, "10.0.0.1:6443".parse().unwrap());
        assert_eq!(s.cookie, (1 << 32) | 7);
        assert_eq!(s.id, id);
        // An IPv6 answer or a short one is not a socket of ours.
        msg[0] = libc::AF_INET6 as u8;
        assert_eq!(parse(&msg), None);
        assert_eq!(parse(&msg[..10]), None);
    }

    #[test]
    fn messages_are_split_at_their_padded_lengths() {
        let mut buf = Vec::new();
        for (kind, body) in [
            (NLMSG_ERROR, &[0u8, 0, 0, 0][..]),
            (NLMSG_DONE, &[1u8, 2][..]),
        ] {
            let len = NLMSG_HDR + body.len();
            buf.extend_from_slice(&(len as u32).to_ne_bytes());
            buf.extend_from_slice(&kind.to_ne_bytes());
            buf.extend_from_slice(&[0; 10]);
            buf.extend_from_slice(body);
            buf.resize(buf.len().next_multiple_of(4), 0);
        }
        let got: Vec<(u16, Vec<u8>)> = messages(&buf).map(|(k, b)| (k, b.to_vec())).collect();
        assert_eq!(
            got,
            vec![(NLMSG_ERROR, vec![0; 4]), (NLMSG_DONE, vec![1, 2])]
        );
        assert!(error_of(&0i32.to_ne_bytes()).is_ok());
        assert_eq!(
            error_of(&(-libc::ENOENT).to_ne_bytes())
                .unwrap_err()
                .raw_os_error(),
            Some(libc::ENOENT)
        );
    }
}
