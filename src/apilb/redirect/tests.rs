//! The program on a real kernel, in network namespaces of the tests' own: each test thread
//! unshares one and brings its loopback up, so that the balancer's address, the backends
//! (127.0.0.2, 127.0.0.3) and every connection exist only there. The program is attached to the
//! test process's cgroup, where it acts on connects made in the test's namespace alone (the
//! second test shows it), and is detached when the test drops it, also on a failure.

use super::*;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use nix::sys::socket::{AddressFamily, SockFlag, SockType, SockaddrIn, bind, connect, socket};

/// Runs `f` on a thread in a new network namespace with its loopback up. Without root the
/// namespace cannot be made, and the test says it did not run.
pub(in crate::apilb) fn in_new_netns<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Option<T> {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipped: attaching a BPF program needs root");
        return None;
    }
    let t = std::thread::spawn(move || {
        new_netns();
        f()
    });
    Some(t.join().unwrap())
}

fn new_netns() {
    nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
    // A child process starts in its parent thread's namespace.
    let up = std::process::Command::new("ip")
        .args(["link", "set", "lo", "up"])
        .status()
        .unwrap();
    assert!(up.success());
}

fn listen(ip: &str) -> (TcpListener, SocketAddrV4) {
    let l = TcpListener::bind(format!("{ip}:0")).unwrap();
    l.set_nonblocking(true).unwrap();
    let SocketAddr::V4(a) = l.local_addr().unwrap() else {
        unreachable!()
    };
    (l, a)
}

/// Which of `listeners` the last connection reached, accepting it; `None` if none did
/// within 2 s.
fn reached(listeners: &[&TcpListener]) -> Option<(usize, TcpStream)> {
    let deadline = Instant::now() + Duration::from_secs(2);
    while Instant::now() < deadline {
        for (i, l) in listeners.iter().enumerate() {
            if let Ok((s, _)) = l.accept() {
                return Some((i, s));
            }
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    None
}

fn reached_index(listeners: &[&TcpListener]) -> Option<usize> {
    reached(listeners).map(|(i, _)| i)
}

/// A client socket bound to `src` before it connects.
fn connect_from(src: &str, to: SocketAddrV4) -> TcpStream {
    let fd = socket(
        AddressFamily::Inet,
        SockType::Stream,
        SockFlag::SOCK_CLOEXEC,
        None,
    )
    .unwrap();
    let src: SocketAddrV4 = format!("{src}:0").parse().unwrap();
    bind(fd.as_raw_fd(), &SockaddrIn::from(src)).unwrap();
    connect(fd.as_raw_fd(), &SockaddrIn::from(to)).unwrap();
    TcpStream::from(fd)
}

/// Whether `s` was closed under its owner: a read fails (ECONNABORTED from `SOCK_DESTROY`) or
/// ends at once, rather than waiting for data.
fn was_closed(s: &mut TcpStream) -> bool {
    s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    match s.read(&mut [0u8; 16]) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) => !matches!(
            e.kind(),
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
        ),
    }
}

#[test]
fn connects_go_to_a_healthy_backend_and_are_closed_when_it_leaves() {
    in_new_netns(|| {
        let (lb, lb_addr) = listen("127.0.0.1");
        let (b1, a1) = listen("127.0.0.2");
        let (b2, a2) = listen("127.0.0.3");
        let all = [&lb, &b1, &b2];
        let mut r = Redirect::attach(SocketAddr::V4(lb_addr), &lb).unwrap();

        // Nothing healthy yet: the proxy takes the connection.
        let _c = TcpStream::connect(lb_addr).unwrap();
        assert_eq!(reached_index(&all), Some(0));

        assert!(r.sync([SocketAddr::V4(a1)]).unwrap().is_none());
        let mut c1 = TcpStream::connect(lb_addr).unwrap();
        let (i, mut s1) = reached(&all).unwrap();
        assert_eq!(
            i, 1,
            "the connect was not redirected to the healthy backend"
        );
        assert_eq!(c1.peer_addr().unwrap(), SocketAddr::V4(a1));
        // The connection is the client's own: bytes go straight through.
        c1.write_all(b"ping").unwrap();
        let mut got = [0u8; 4];
        s1.set_nonblocking(false).unwrap();
        s1.read_exact(&mut got).unwrap();
        assert_eq!(&got, b"ping");

        // A client bound to a loopback address of its own stays on the proxy.
        let _bound = connect_from("127.0.0.1", lb_addr);
        assert_eq!(reached_index(&all), Some(0));
        // So does a connect to another port of 127.0.0.1 (here b1's port there: refused).
        assert!(TcpStream::connect(SocketAddrV4::new(Ipv4Addr::LOCALHOST, a1.port())).is_err());

        // A direct connection to b1, not made by the program.
        let mut direct = TcpStream::connect(a1).unwrap();
        let (_, mut direct_s) = reached(&all).unwrap();

        // Two healthy: one process's connects all go to one of them, processes spread over
        // both, and nothing is closed.
        assert!(
            r.sync([SocketAddr::V4(a2), SocketAddr::V4(a1)])
                .unwrap()
                .is_none()
        );
        let mut seen = [0usize; 3];
        let mut kept = Vec::new();
        for _ in 0..20 {
            kept.push(TcpStream::connect(lb_addr).unwrap());
            seen[reached_index(&all).unwrap()] += 1;
        }
        assert!(
            seen == [0, 20, 0] || seen == [0, 0, 20],
            "one process's connects went to several backends: {seen:?}"
        );
        let mut by_process = [0usize; 3];
        for _ in 0..12 {
            // A connect from a process of its own (bash's /dev/tcp), which then exits.
            let st = std::process::Command::new("bash")
                .arg("-c")
                .arg(format!("exec 3<>/dev/tcp/127.0.0.1/{}", lb_addr.port()))
                .status()
                .unwrap();
            assert!(st.success());
            by_process[reached_index(&all).unwrap()] += 1;
        }
        assert!(
            by_process[0] == 0 && by_process[1] > 0 && by_process[2] > 0,
            "processes did not spread over the backends: {by_process:?}"
        );

        // b1 leaves: exactly the connections redirected to it are closed.
        let closer = r.sync([SocketAddr::V4(a2)]).unwrap().unwrap();
        let closed = closer.close();
        assert_eq!(closed.len(), 1);
        assert_eq!(closed[0].0, a1);
        assert_eq!(*closed[0].1.as_ref().unwrap(), 1 + seen[1]);
        assert!(
            was_closed(&mut c1),
            "a redirected connection to b1 stayed open"
        );
        direct.write_all(b"still").unwrap();
        let mut got = [0u8; 5];
        direct_s.set_nonblocking(false).unwrap();
        direct_s.read_exact(&mut got).unwrap();
        assert_eq!(
            &got, b"still",
            "a connection the program did not make was closed"
        );
        for _ in 0..10 {
            let _c = TcpStream::connect(lb_addr).unwrap();
            assert_eq!(reached_index(&all), Some(2));
        }

        // Nothing healthy: back to the proxy, and b2's connections are closed.
        let closed = r.sync([]).unwrap().unwrap().close();
        assert_eq!(closed[0].0, a2);
        // The ones still open; those closed by the loop above are in TIME_WAIT, with no owner.
        assert!(
            *closed[0].1.as_ref().unwrap() >= seen[2],
            "{closed:?} {seen:?}"
        );
        for c in &mut kept {
            assert!(was_closed(c));
        }
        let _c = TcpStream::connect(lb_addr).unwrap();
        assert_eq!(reached_index(&all), Some(0));

        // Dropped, the program is gone.
        assert!(r.sync([SocketAddr::V4(a2)]).unwrap().is_none());
        drop(r);
        let _c = TcpStream::connect(lb_addr).unwrap();
        assert_eq!(reached_index(&all), Some(0));
    });
}

#[test]
fn connects_in_another_network_namespace_are_left_alone() {
    in_new_netns(|| {
        let (lb, lb_addr) = listen("127.0.0.1");
        let (b1, a1) = listen("127.0.0.2");
        let mut r = Redirect::attach(SocketAddr::V4(lb_addr), &lb).unwrap();
        r.sync([SocketAddr::V4(a1)]).unwrap();
        let _c = TcpStream::connect(lb_addr).unwrap();
        assert_eq!(reached_index(&[&lb, &b1]), Some(1));
        // Another namespace with a listener on the same address and port: its connects
        // reach it, though the same program runs for them.
        let other = std::thread::spawn(move || {
            new_netns();
            let l = TcpListener::bind(SocketAddr::V4(lb_addr)).unwrap();
            l.set_nonblocking(true).unwrap();
            let _c = TcpStream::connect(lb_addr).unwrap();
            reached_index(&[&l])
        })
        .join()
        .unwrap();
        assert_eq!(other, Some(0));
        drop(r);
    });
}

#[test]
fn the_backends_value_is_in_the_programs_byte_order() {
    let v = value(&[
        "10.0.0.1:6443".parse().unwrap(),
        "10.0.0.2:443".parse().unwrap(),
    ]);
    assert_eq!(v.len(), VALUE_SIZE);
    assert_eq!(u32::from_ne_bytes(v[0..4].try_into().unwrap()), 2);
    assert_eq!(&v[8..12], &[10, 0, 0, 1]);
    // The port as the context holds it: network order in the low 16 bits of a native word.
    assert_eq!(&v[12..14], &6443u16.to_be_bytes());
    assert_eq!(&v[16..20], &[10, 0, 0, 2]);
    assert_eq!(&v[20..22], &443u16.to_be_bytes());
    assert!(v[24..].iter().all(|&b| b == 0));
}

#[test]
fn the_cgroup_is_found_on_unified_and_hybrid_hosts() {
    let unified = "30 23 0:26 / /sys/fs/cgroup rw,nosuid shared:4 - cgroup2 cgroup2 rw\n";
    let hybrid = "25 24 0:22 / /sys/fs/cgroup ro - tmpfs tmpfs ro\n\
                  40 25 0:35 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw\n\
                  41 25 0:36 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n";
    let cg = "4:memory:/x\n0::/system.slice/kubesup.service\n";
    assert_eq!(
        cgroup2_path(unified, cg).unwrap(),
        Path::new("/sys/fs/cgroup/system.slice/kubesup.service")
    );
    assert_eq!(
        cgroup2_path(hybrid, cg).unwrap(),
        Path::new("/sys/fs/cgroup/unified/system.slice/kubesup.service")
    );
    // In a cgroup namespace whose mount shows a subtree.
    let nested = "30 23 0:26 /system.slice /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n";
    assert_eq!(
        cgroup2_path(nested, "0::/system.slice/kubesup.service\n").unwrap(),
        Path::new("/sys/fs/cgroup/kubesup.service")
    );
    // cgroup v1 only: no fast path.
    assert_eq!(
        cgroup2_path(
            "41 25 0:36 / /sys/fs/cgroup/memory rw - cgroup cgroup rw\n",
            "4:memory:/\n"
        ),
        None
    );
}
