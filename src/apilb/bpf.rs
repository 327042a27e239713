//! The few `bpf(2)` commands the balancer's connect-time redirect needs (a map, a program, a
//! link to a cgroup), and the instructions its program is written in.
//!
//! Why by hand: the program is about fifty instructions, fixed at build time except for three
//! constants. A BPF toolchain (clang, an ELF loader such as aya or libbpf) would add a build
//! dependency this machine and the distro builds do not have, for less code than its glue.
//! Each instruction below is the kernel's own encoding (`struct bpf_insn`,
//! `include/uapi/linux/bpf.h`), and the kernel's verifier checks the whole program at load:
//! a mistake here is a load error with the verifier's log, never undefined behaviour.

#![allow(
    unsafe_code,
    reason = "bpf(2) has no wrapper in libc or nix: each call hands the kernel a #[repr(C)] \
              attribute struct and, for maps, pointers to buffers whose sizes the map fixes"
)]

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

// Commands (enum bpf_cmd).
const BPF_MAP_CREATE: u32 = 0;
const BPF_MAP_LOOKUP_ELEM: u32 = 1;
const BPF_MAP_UPDATE_ELEM: u32 = 2;
const BPF_PROG_LOAD: u32 = 5;
const BPF_LINK_CREATE: u32 = 28;

/// `enum bpf_map_type`.
pub const MAP_HASH: u32 = 1;
pub const MAP_LRU_HASH: u32 = 9;
/// `enum bpf_prog_type`: BPF_PROG_TYPE_CGROUP_SOCK_ADDR.
pub const PROG_CGROUP_SOCK_ADDR: u32 = 18;
/// `enum bpf_attach_type`: BPF_CGROUP_INET4_CONNECT.
pub const ATTACH_INET4_CONNECT: u32 = 10;

/// Calls `bpf(cmd, attr, sizeof attr)`.
fn sys_bpf<T>(cmd: u32, attr: &mut T) -> io::Result<i64> {
    let size = u32::try_from(std::mem::size_of::<T>())
        .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: `attr` is a live, initialised #[repr(C)] attribute struct of `size` bytes, laid
    // out as the kernel's union bpf_attr member for `cmd`; the kernel reads (and for some
    // commands writes) only within `size`, and any pointer inside it is checked by its caller.
    let r = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            libc::c_long::from(cmd),
            std::ptr::from_mut(attr).cast::<libc::c_void>(),
            size,
        )
    };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

/// Takes ownership of a descriptor `bpf(2)` returned.
fn owned(r: i64) -> io::Result<OwnedFd> {
    let fd = RawFd::try_from(r).map_err(|_| io::Error::from(io::ErrorKind::InvalidData))?;
    // SAFETY: a successful BPF_MAP_CREATE, BPF_PROG_LOAD or BPF_LINK_CREATE returns a new
    // descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn name16(name: &str) -> [u8; 16] {
    // The kernel wants a NUL-terminated name of at most 15 bytes from [A-Za-z0-9_.].
    let mut out = [0u8; 16];
    for (o, b) in out.iter_mut().zip(name.bytes().take(15)) {
        *o = b;
    }
    out
}

/// A BPF map whose key and value sizes are fixed at creation: every access is checked against
/// them, so that the kernel never reads past a buffer handed to it.
#[derive(Debug)]
pub struct Map {
    fd: OwnedFd,
    key_size: usize,
    value_size: usize,
}

#[repr(C)]
#[derive(Default)]
struct MapCreateAttr {
    map_type: u32,
    key_size: u32,
    value_size: u32,
    max_entries: u32,
    map_flags: u32,
    inner_map_fd: u32,
    numa_node: u32,
    map_name: [u8; 16],
}

#[repr(C)]
struct MapElemAttr {
    map_fd: u32,
    _pad: u32,
    key: u64,
    value: u64,
    flags: u64,
}

impl Map {
    pub fn create(
        map_type: u32,
        key_size: u32,
        value_size: u32,
        max_entries: u32,
        name: &str,
    ) -> io::Result<Self> {
        let mut attr = MapCreateAttr {
            map_type,
            key_size,
            value_size,
            max_entries,
            map_name: name16(name),
            ..Default::default()
        };
        let fd = owned(sys_bpf(BPF_MAP_CREATE, &mut attr)?)?;
        Ok(Self {
            fd,
            key_size: key_size as usize,
            value_size: value_size as usize,
        })
    }

    fn attr(&self, key: &[u8], value: u64, flags: u64) -> io::Result<MapElemAttr> {
        if key.len() != self.key_size {
            return Err(io::Error::from(io::ErrorKind::InvalidInput));
        }
        Ok(MapElemAttr {
            map_fd: u32::try_from(self.fd.as_raw_fd())
                .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?,
            _pad: 0,
            key: key.as_ptr() as u64,
            value,
            flags,
        })
    }

    /// Inserts or replaces `key`'s value (BPF_ANY). In a hash map the element is replaced as a
    /// whole: a program running meanwhile sees the old value or the new one, never a mix.
    pub fn update(&self, key: &[u8], value: &[u8]) -> io::Result<()> {
        if value.len() != self.value_size {
            return Err(io::Error::from(io::ErrorKind::InvalidInput));
        }
        let mut attr = self.attr(key, value.as_ptr() as u64, 0)?;
        sys_bpf(BPF_MAP_UPDATE_ELEM, &mut attr).map(drop)
    }

    /// `key`'s value, or `None` when it has none.
    pub fn lookup(&self, key: &[u8]) -> io::Result<Option<Vec<u8>>> {
        let mut value = vec![0u8; self.value_size];
        let mut attr = self.attr(key, value.as_mut_ptr() as u64, 0)?;
        match sys_bpf(BPF_MAP_LOOKUP_ELEM, &mut attr) {
            Ok(_) => Ok(Some(value)),
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(None),
            Err(e) => Err(e),
        }
    }
}

#[repr(C)]
#[derive(Default)]
struct ProgLoadAttr {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
    prog_name: [u8; 16],
    prog_ifindex: u32,
    expected_attach_type: u32,
}

/// A program the kernel refused, with the verifier's reasons.
#[derive(Debug)]
pub struct LoadError {
    pub error: io::Error,
    /// The verifier's log (its last lines say why), empty if it gave none.
    pub log: String,
}

/// Loads `insns` as a program of `prog_type` for `attach_type`. On a refusal the load is
/// repeated with the verifier's log on, so that the error says why.
pub fn prog_load(
    prog_type: u32,
    attach_type: u32,
    insns: &[Insn],
    name: &str,
) -> Result<OwnedFd, LoadError> {
    // kubesup's own licence: the program uses no GPL-only helper, so it need not claim GPL.
    let license = c"Apache-2.0";
    let load = |log: Option<&mut Vec<u8>>| {
        let mut attr = ProgLoadAttr {
            prog_type,
            insn_cnt: u32::try_from(insns.len()).unwrap_or(u32::MAX),
            insns: insns.as_ptr() as u64,
            license: license.as_ptr() as u64,
            prog_name: name16(name),
            expected_attach_type: attach_type,
            ..Default::default()
        };
        if let Some(buf) = log {
            attr.log_level = 1;
            attr.log_size = u32::try_from(buf.len()).unwrap_or(u32::MAX);
            attr.log_buf = buf.as_mut_ptr() as u64;
        }
        sys_bpf(BPF_PROG_LOAD, &mut attr).and_then(owned)
    };
    load(None).or_else(|error| {
        let mut buf = vec![0u8; 64 * 1024];
        let again = load(Some(&mut buf));
        let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
        let log = String::from_utf8_lossy(&buf[..end]).trim().to_string();
        match again {
            Ok(fd) => Ok(fd),
            Err(_) => Err(LoadError { error, log }),
        }
    })
}

#[repr(C)]
#[derive(Default)]
struct LinkCreateAttr {
    prog_fd: u32,
    target_fd: u32,
    attach_type: u32,
    flags: u32,
}

/// Attaches `prog` to the cgroup `cgroup` (a directory's descriptor) for `attach_type`, beside
/// any other program there. The attachment lasts as long as the returned link: closing it (or
/// the process dying) detaches the program, so nothing of it outlives kubesup.
pub fn link_cgroup(
    prog: BorrowedFd<'_>,
    cgroup: BorrowedFd<'_>,
    attach_type: u32,
) -> io::Result<OwnedFd> {
    let fd = |f: BorrowedFd<'_>| {
        u32::try_from(f.as_raw_fd()).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))
    };
    let mut attr = LinkCreateAttr {
        prog_fd: fd(prog)?,
        target_fd: fd(cgroup)?,
        attach_type,
        flags: 0,
    };
    owned(sys_bpf(BPF_LINK_CREATE, &mut attr)?)
}

/// One BPF instruction (`struct bpf_insn`).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Insn {
    code: u8,
    /// dst_reg in the low nibble, src_reg in the high one.
    regs: u8,
    off: i16,
    imm: i32,
}

/// Registers: R0 return value, R1–R5 arguments (clobbered by calls), R6–R9 kept across calls,
/// R10 the read-only frame pointer.
pub type Reg = u8;
pub const R0: Reg = 0;
pub const R1: Reg = 1;
pub const R2: Reg = 2;
pub const R3: Reg = 3;
pub const R4: Reg = 4;
pub const R6: Reg = 6;
pub const R7: Reg = 7;
pub const R8: Reg = 8;
pub const R10: Reg = 10;

// Instruction classes, sizes, modes and operations (bpf.h / bpf_common.h).
const LD: u8 = 0x00;
const LDX: u8 = 0x01;
const ST: u8 = 0x02;
const STX: u8 = 0x03;
const JMP: u8 = 0x05;
const ALU64: u8 = 0x07;
const W: u8 = 0x00;
const DW: u8 = 0x18;
const IMM: u8 = 0x00;
const MEM: u8 = 0x60;
const K: u8 = 0x00;
const X: u8 = 0x08;

/// ALU operations.
pub const ADD: u8 = 0x00;
pub const AND: u8 = 0x50;
pub const LSH: u8 = 0x60;
pub const RSH: u8 = 0x70;
pub const MOD: u8 = 0x90;
pub const MOV: u8 = 0xb0;
/// Jump conditions.
pub const JEQ: u8 = 0x10;
pub const JGT: u8 = 0x20;
pub const JNE: u8 = 0x50;
const CALL: u8 = 0x80;
const EXIT: u8 = 0x90;

/// `src_reg` of a 64-bit load that names a map by descriptor (BPF_PSEUDO_MAP_FD).
const PSEUDO_MAP_FD: u8 = 1;

impl Insn {
    /// The same instruction with jump offset `off` (instructions to skip after this one).
    pub const fn with_off(self, off: i16) -> Self {
        Self { off, ..self }
    }
}

const fn insn(code: u8, dst: Reg, src: Reg, off: i16, imm: i32) -> Insn {
    Insn {
        code,
        regs: (src << 4) | (dst & 0x0f),
        off,
        imm,
    }
}

/// `dst op= imm` (64-bit).
pub const fn alu_imm(op: u8, dst: Reg, imm: i32) -> Insn {
    insn(ALU64 | op | K, dst, 0, 0, imm)
}

/// `dst op= src` (64-bit).
pub const fn alu_reg(op: u8, dst: Reg, src: Reg) -> Insn {
    insn(ALU64 | op | X, dst, src, 0, 0)
}

/// `dst = *(u32 *)(src + off)`.
pub const fn load_w(dst: Reg, src: Reg, off: i16) -> Insn {
    insn(LDX | MEM | W, dst, src, off, 0)
}

/// `dst = *(u64 *)(src + off)`.
pub const fn load_dw(dst: Reg, src: Reg, off: i16) -> Insn {
    insn(LDX | MEM | DW, dst, src, off, 0)
}

/// `*(u32 *)(dst + off) = src`.
pub const fn store_w(dst: Reg, off: i16, src: Reg) -> Insn {
    insn(STX | MEM | W, dst, src, off, 0)
}

/// `*(u64 *)(dst + off) = src`.
pub const fn store_dw(dst: Reg, off: i16, src: Reg) -> Insn {
    insn(STX | MEM | DW, dst, src, off, 0)
}

/// `*(u32 *)(dst + off) = imm`.
pub const fn store_w_imm(dst: Reg, off: i16, imm: i32) -> Insn {
    insn(ST | MEM | W, dst, 0, off, imm)
}

/// `if dst <cond> imm goto +off`.
pub const fn jump_imm(cond: u8, dst: Reg, imm: i32, off: i16) -> Insn {
    insn(JMP | cond | K, dst, 0, off, imm)
}

/// `if dst <cond> src goto +off`.
pub const fn jump_reg(cond: u8, dst: Reg, src: Reg, off: i16) -> Insn {
    insn(JMP | cond | X, dst, src, off, 0)
}

/// Calls kernel helper number `helper` (`enum bpf_func_id`).
pub const fn call(helper: i32) -> Insn {
    insn(JMP | CALL, 0, 0, 0, helper)
}

pub const fn exit() -> Insn {
    insn(JMP | EXIT, 0, 0, 0, 0)
}

/// `dst = imm` with a 64-bit constant: two instruction slots.
pub const fn load_imm64(dst: Reg, imm: u64) -> [Insn; 2] {
    [
        insn(LD | IMM | DW, dst, 0, 0, imm as u32 as i32),
        insn(0, 0, 0, 0, (imm >> 32) as u32 as i32),
    ]
}

/// `dst = &map`: the kernel replaces the descriptor by the map's address at load.
pub fn load_map(dst: Reg, map: &Map) -> [Insn; 2] {
    [
        insn(LD | IMM | DW, dst, PSEUDO_MAP_FD, 0, map.fd.as_raw_fd()),
        insn(0, 0, 0, 0, 0),
    ]
}
