//! How kubesup prints an error: the error, then each cause once, on one line.
//!
//! Every module's error type follows one rule so that this works: a variant either puts its
//! cause in its message or chains it as `#[source]`/`#[from]`, never both. [`chain`] then walks
//! the sources, and the unit tests below render a representative error of every module and fail
//! on a cause printed twice.

use std::error::Error;

/// `what failed: why: why that`, each cause once.
pub fn chain(e: &(dyn Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut next = e.source();
    while let Some(cause) = next {
        let text = cause.to_string();
        // `#[error(transparent)]` wrappers print their source's message as their own, and
        // then report the same source again: skip a cause that says exactly what was said.
        if !out.ends_with(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        next = cause.source();
    }
    out
}

/// The operation failed.
pub const EXIT_FAILURE: u8 = 1;
/// Bad input (config or usage), found before anything was written or started.
pub const EXIT_INVALID: u8 = 2;
/// A check found a problem (`certs check`, `status` with a component not ready).
pub const EXIT_CHECK: u8 = 3;

/// An error that knows its exit code and how it reads to an operator, as firecracker's errors
/// map themselves to exit codes: the dispatcher asks the error, it never inspects it.
pub trait Exit: Error + 'static {
    fn exit_code(&self) -> u8 {
        EXIT_FAILURE
    }

    /// What `kubesup` prints on standard error.
    fn render(&self) -> String
    where
        Self: Sized,
    {
        format!("error: {}", chain(self))
    }
}

/// The [`Exit`] impl of an error that wraps other [`Exit`] errors in the named variants (bad
/// input from the config, a bad log flag): those keep their own exit code and text, and every
/// other variant is a failure (exit 1) printed with its chain of causes.
macro_rules! exit_via {
    ($ty:ty: $($variant:ident),+ $(,)?) => {
        impl $crate::errors::Exit for $ty {
            fn exit_code(&self) -> u8 {
                match self {
                    $(Self::$variant(e) => $crate::errors::Exit::exit_code(e),)+
                    #[allow(unreachable_patterns, reason = "an error whose every variant is named")]
                    _ => $crate::errors::EXIT_FAILURE,
                }
            }

            fn render(&self) -> String {
                match self {
                    $(Self::$variant(e) => $crate::errors::Exit::render(e),)+
                    #[allow(unreachable_patterns, reason = "an error whose every variant is named")]
                    other => format!("error: {}", $crate::errors::chain(other)),
                }
            }
        }
    };
}
pub(crate) use exit_via;

#[cfg(test)]
mod tests {
    //! One representative error of every error type in the crate, rendered with [`chain`],
    //! failing on a cause printed twice.
    //!
    //! The list of types comes from
    //! `grep -rn -A3 'derive(.*thiserror::Error' src | grep -E '(enum|struct) '`
    //! (all of them but `src/bin/fake-component.rs`'s, a separate binary, and the test-only
    //! `Failed` in retry.rs). **Adding an error type? Add a sample of it to `samples` below**,
    //! with a real innermost cause (an `io::Error`, a parse error) where its variants have one.

    use std::error::Error;
    use std::io;
    use std::path::PathBuf;
    use std::time::Duration;

    use super::chain;
    use crate::backup::{BackupError, CryptError};
    use crate::cmd;
    use crate::config::{ConfigError, Problems};
    use crate::fetch::FetchError;
    use crate::fsutil::FsError;
    use crate::http::{HttpError, PemError, ProxyError};
    use crate::join::client::ClientError;
    use crate::join::server::ServerError;
    use crate::join::store::{StoreError, StoreOp};
    use crate::join::tls::TlsError;
    use crate::join::token::TokenError;
    use crate::model::Component;
    use crate::pki::{
        CaKind, CertError, CorruptError, CsrError, NodeCertKind, PkiError, PolicyError, SanError,
    };
    use crate::supervise::control::ControlError;
    use crate::supervise::file::FileError;
    use crate::supervise::lock::LockError;
    use crate::supervise::probe::ProbeError;
    use crate::supervise::process::ProcessError;

    /// The causes of `e` (not `e` itself) printed twice: a cause whose text is also in the
    /// message of the error it is the source of (the cause both in the message and chained),
    /// or that appears more than once in the line [`chain`] renders. The first check is the
    /// rule itself: `chain` skips a cause the line already ends with, which hides the usual
    /// form of the bug (`"cannot read {path}: {source}"`) from the rendered line alone.
    fn repeated_causes(e: &(dyn Error + 'static)) -> Vec<String> {
        let line = chain(e);
        let mut repeated = Vec::new();
        let mut outer = e;
        while let Some(cause) = outer.source() {
            let (text, said) = (cause.to_string(), outer.to_string());
            let in_message = said != text && said.contains(text.as_str());
            if !text.is_empty() && (in_message || line.matches(text.as_str()).count() > 1) {
                repeated.push(text);
            }
            outer = cause;
        }
        repeated
    }

    fn denied() -> io::Error {
        io::Error::from_raw_os_error(libc::EACCES)
    }
    fn json() -> serde_json::Error {
        serde_json::from_str::<serde_json::Value>("{").unwrap_err()
    }
    fn yaml() -> serde_yaml_ng::Error {
        serde_yaml_ng::from_str::<u32>("[").unwrap_err()
    }
    fn p(s: &str) -> PathBuf {
        PathBuf::from(s)
    }
    fn fs() -> FsError {
        FsError::Write {
            path: p("/var/lib/kubesup/pki/ca.crt"),
            source: denied(),
        }
    }
    fn http() -> HttpError {
        HttpError::Connect {
            url: "https://10.0.0.1:9443/v1/ca".into(),
            source: io::Error::from_raw_os_error(libc::ECONNREFUSED),
        }
    }
    fn config() -> ConfigError {
        ConfigError::Read {
            path: p("/etc/kubesup/config.yaml"),
            source: denied(),
        }
    }
    fn invalid_config() -> ConfigError {
        let mut problems = Problems::default();
        problems.push("pod-cidr", "not a CIDR");
        ConfigError::Invalid(problems)
    }
    fn setup() -> cmd::SetupError {
        cmd::SetupError::LogFilter {
            filter: "kubesup=loud".into(),
            source: "kubesup=loud"
                .parse::<tracing_subscriber::filter::Targets>()
                .unwrap_err(),
        }
    }
    fn pki() -> PkiError {
        PkiError::Store {
            name: "ca".into(),
            source: fs(),
        }
    }
    fn not_pem() -> CertError {
        CertError::NotPem(x509_parser::pem::parse_x509_pem(b"hello").unwrap_err())
    }
    fn x509() -> x509_parser::error::X509Error {
        x509_parser::error::X509Error::InvalidVersion
    }
    fn etcd() -> etcd_client::Error {
        etcd_client::Error::InvalidArgs("no endpoints".into())
    }
    fn fetch() -> FetchError {
        FetchError::Io {
            action: "read",
            path: p("/var/lib/kubesup/bin/v1.33.1/kubelet"),
            source: denied(),
        }
    }
    fn process() -> ProcessError {
        ProcessError::Output {
            program: p("/usr/sbin/iptables"),
            source: io::Error::from(io::ErrorKind::BrokenPipe),
        }
    }
    fn supervise() -> crate::supervise::SuperviseError {
        crate::supervise::SuperviseError::Process(process())
    }
    fn daemon() -> crate::daemon::DaemonError {
        crate::daemon::DaemonError::DataDir {
            path: p("/var/lib/kubesup"),
            source: denied(),
        }
    }
    fn build() -> crate::plan::BuildError {
        crate::plan::BuildError::Components(crate::components::ComponentError::Write(fs()))
    }
    fn token() -> TokenError {
        TokenError::Ca(not_pem())
    }
    fn client() -> ClientError {
        ClientError::Unreachable(http())
    }
    fn store() -> StoreError {
        StoreError::Etcd {
            what: "get token",
            source: etcd(),
        }
    }
    fn control() -> ControlError {
        ControlError::Io {
            path: p("/var/lib/kubesup/kubesup.sock"),
            source: io::Error::from(io::ErrorKind::ConnectionReset),
        }
    }

    /// Named samples: at least one of every error type, and every variant whose cause is
    /// another error where that was cheap to build.
    fn samples() -> Vec<(&'static str, Box<dyn Error>)> {
        use crate::cmd::install::{InstallError, RecordError};
        use crate::cmd::worker::{IdentityError, WorkerError};
        use crate::preflight::{DataDirError, PreflightError};

        vec![
            // The PKI module.
            (
                "PkiError::Read",
                Box::new(PkiError::Read {
                    path: p("/pki/ca.key"),
                    source: denied(),
                }),
            ),
            ("PkiError::Store", Box::new(pki())),
            (
                "PkiError::Corrupt(cert)",
                Box::new(PkiError::Corrupt {
                    path: p("/pki/ca.crt"),
                    reason: not_pem().into(),
                }),
            ),
            (
                "PkiError::Corrupt(key)",
                Box::new(PkiError::Corrupt {
                    path: p("/pki/ca.key"),
                    reason: CorruptError::NotAKey(rcgen::Error::CouldNotParseKeyPair),
                }),
            ),
            (
                "PkiError::Profile",
                Box::new(PkiError::Profile {
                    name: "apiserver".into(),
                    source: SanError::InvalidDns { name: "a b".into() },
                }),
            ),
            (
                "PkiError::Sign",
                Box::new(PkiError::Sign {
                    name: "apiserver".into(),
                    source: rcgen::Error::CouldNotParseCertificate,
                }),
            ),
            (
                "PkiError::RenderKubeconfig",
                Box::new(PkiError::RenderKubeconfig {
                    user: "admin",
                    source: yaml(),
                }),
            ),
            (
                "PkiError::RenderJson",
                Box::new(PkiError::RenderJson { source: json() }),
            ),
            (
                "CorruptError",
                Box::new(CorruptError::Cert(CertError::Extension {
                    extension: "keyUsage",
                    cause: x509(),
                })),
            ),
            ("CertError::NotPem", Box::new(not_pem())),
            (
                "CertError::NotX509",
                Box::new(CertError::NotX509(x509_parser::nom::Err::Error(x509()))),
            ),
            (
                "SanError",
                Box::new(SanError::NotNameOrIp {
                    san: "mailto:a@b".into(),
                }),
            ),
            (
                "PolicyError::San",
                Box::new(PolicyError::San(SanError::InvalidDns {
                    name: "a b".into(),
                })),
            ),
            (
                "PolicyError::Sign",
                Box::new(PolicyError::Sign {
                    source: rcgen::Error::CouldNotParseCertificate,
                }),
            ),
            (
                "PolicyError::Malformed",
                Box::new(PolicyError::Malformed(CsrError::Pem(
                    x509_parser::pem::parse_x509_pem(b"hello").unwrap_err(),
                ))),
            ),
            ("CsrError", Box::new(CsrError::Attribute(x509()))),
            (
                "PolicyError::WrongCa",
                Box::new(PolicyError::WrongCa {
                    kind: NodeCertKind::KubeletClient,
                    want: CaKind::Cluster,
                    ca: CaKind::Etcd,
                }),
            ),
            // Shared helpers.
            ("FsError", Box::new(fs())),
            ("HttpError::Connect", Box::new(http())),
            (
                "HttpError::TlsConfig",
                Box::new(HttpError::TlsConfig {
                    what: "CA certificate",
                    source: rustls::Error::General("bad".into()),
                }),
            ),
            (
                "HttpError::Pem",
                Box::new(HttpError::Pem {
                    what: "client key",
                    source: PemError::Read(io::Error::from(io::ErrorKind::InvalidData)),
                }),
            ),
            (
                "HttpError::Proxy",
                Box::new(HttpError::Proxy {
                    url: "https://dl.k8s.io/x".into(),
                    proxy: "http://proxy:3128/".into(),
                    source: ProxyError::Connect(io::Error::from_raw_os_error(libc::ECONNREFUSED)),
                }),
            ),
            (
                "PemError",
                Box::new(PemError::Read(io::Error::from(io::ErrorKind::InvalidData))),
            ),
            (
                "ProxyError",
                Box::new(ProxyError::NoAnswer(io::Error::from(
                    io::ErrorKind::UnexpectedEof,
                ))),
            ),
            (
                "HttpError::Json",
                Box::new(HttpError::Json {
                    url: "http://x/".into(),
                    source: json(),
                }),
            ),
            (
                "HttpError::Handshake",
                Box::new(HttpError::Handshake {
                    url: "https://x/".into(),
                    source: io::Error::other(rustls::Error::General("bad".into())),
                }),
            ),
            (
                "VxlanError::Create",
                Box::new(crate::preflight::VxlanError::Create(
                    io::Error::from_raw_os_error(95),
                )),
            ),
            (
                "VxlanError::Namespace",
                Box::new(crate::preflight::VxlanError::Namespace(
                    nix::errno::Errno::EPERM,
                )),
            ),
            (
                "DataDirError",
                Box::new(DataDirError::Inspect {
                    path: p("/var/lib"),
                    source: nix::errno::Errno::EACCES,
                }),
            ),
            (
                "PreflightError",
                Box::new(PreflightError(vec![format!(
                    "preflight data-dir: {}",
                    chain(&DataDirError::Inspect {
                        path: p("/var/lib"),
                        source: nix::errno::Errno::EACCES
                    })
                )])),
            ),
            ("ConfigError::Read", Box::new(config())),
            ("ConfigError::Invalid", Box::new(invalid_config())),
            ("FetchError::Io", Box::new(fetch())),
            (
                "FetchError::Client",
                Box::new(FetchError::Client { source: http() }),
            ),
            ("FetchError::Request", Box::new(FetchError::Request(http()))),
            (
                "FetchError::Record",
                Box::new(FetchError::Record {
                    path: p("/bin/record.json"),
                    source: json(),
                }),
            ),
            (
                "FetchError::Archive",
                Box::new(FetchError::Archive {
                    url: "https://dl.k8s.io/x.tar.gz".into(),
                    source: io::Error::from(io::ErrorKind::UnexpectedEof),
                }),
            ),
            ("FetchError::Fs", Box::new(FetchError::Fs(fs()))),
            (
                "FetchError::BundleRead",
                Box::new(FetchError::BundleRead {
                    path: p("/tmp/k8s.bundle"),
                    what: "not a tar",
                    source: io::Error::from(io::ErrorKind::UnexpectedEof),
                }),
            ),
            (
                "FetchError::BundleManifest",
                Box::new(FetchError::BundleManifest {
                    path: p("/tmp/k8s.bundle"),
                    source: json(),
                }),
            ),
            (
                "EtcdError::Read",
                Box::new(crate::etcd::EtcdError::Read {
                    path: p("/pki/etcd/ca.crt"),
                    source: denied(),
                }),
            ),
            (
                "EtcdError::Connect",
                Box::new(crate::etcd::EtcdError::Connect {
                    endpoint: "https://127.0.0.1:2379".into(),
                    source: etcd(),
                }),
            ),
            (
                "EtcdError::V2",
                Box::new(crate::etcd::EtcdError::V2(http())),
            ),
            (
                "cmd::master::MasterError::FlannelEtcd",
                Box::new(cmd::master::MasterError::FlannelEtcd(
                    crate::etcd::EtcdError::NoV2 {
                        flannel: "v0.16.3".into(),
                        etcd: "v3.6.5".into(),
                    },
                )),
            ),
            (
                "MembersError::Request",
                Box::new(crate::etcd::members::MembersError::Request {
                    what: "member list",
                    source: etcd(),
                }),
            ),
            (
                "MembersError::LearnerExists",
                Box::new(crate::etcd::members::MembersError::LearnerExists {
                    name: "m2".into(),
                    peer_url: "https://10.0.0.2:2380".into(),
                    source: etcd(),
                }),
            ),
            (
                "MembersError::NotCaughtUp",
                Box::new(crate::etcd::members::MembersError::NotCaughtUp {
                    id: 0x8e9e05c52164694d,
                    attempts: 30,
                    source: etcd(),
                }),
            ),
            (
                "KubeError::Read",
                Box::new(crate::kube::KubeError::Read {
                    path: p("/admin.kubeconfig"),
                    source: denied(),
                }),
            ),
            (
                "KubeError::Request",
                Box::new(crate::kube::KubeError::Request {
                    method: "PATCH",
                    source: http(),
                }),
            ),
            (
                "ComponentError::Render",
                Box::new(crate::components::ComponentError::Render {
                    component: Component::Etcd,
                    source: yaml(),
                }),
            ),
            (
                "ComponentError::Write",
                Box::new(crate::components::ComponentError::Write(fs())),
            ),
            (
                "BuildError::Fetch",
                Box::new(crate::plan::BuildError::Fetch(fetch())),
            ),
            ("BuildError::Components", Box::new(build())),
            (
                "BuildError::Cni",
                Box::new(crate::plan::BuildError::Cni(crate::network::CniError {
                    plugin: "flannel".into(),
                    dir: p("/usr/lib/cni"),
                    problem: "present",
                    owner: "containerd.cni-bin-dir",
                    origin: "is released by flannel-io/cni-plugin",
                    fix: "remove containerd.cni-bin-dir so kubesup fetches it, or install it there",
                })),
            ),
            // Supervision.
            (
                "ProcessError::Exec",
                Box::new(ProcessError::Exec {
                    program: p("/bin/kubelet"),
                    cause: io::Error::from_raw_os_error(libc::ENOEXEC),
                }),
            ),
            (
                "ProcessError::Thread",
                Box::new(ProcessError::Thread(
                    "reaper",
                    io::Error::from_raw_os_error(libc::EAGAIN),
                )),
            ),
            ("ProcessError::Output", Box::new(process())),
            (
                "ProcessError::Start",
                Box::new(ProcessError::Start(Box::leak(Box::new(
                    ProcessError::Signals(denied()),
                )))),
            ),
            ("SuperviseError", Box::new(supervise())),
            (
                "VerifyError",
                Box::new(crate::supervise::VerifyError::new(fetch())),
            ),
            (
                "ControlError::Connect",
                Box::new(ControlError::Connect {
                    path: p("/kubesup.sock"),
                    cause: io::Error::from(io::ErrorKind::NotFound),
                }),
            ),
            (
                "ControlError::Bind",
                Box::new(ControlError::Bind {
                    path: p("/kubesup.sock"),
                    source: denied(),
                }),
            ),
            ("ControlError::Io", Box::new(control())),
            (
                "ControlError::Protocol",
                Box::new(ControlError::Protocol {
                    path: p("/kubesup.sock"),
                    source: json(),
                }),
            ),
            (
                "FileError",
                Box::new(FileError::Read {
                    path: p("/etc/children.yaml"),
                    source: denied(),
                }),
            ),
            (
                "FileError::Parse",
                Box::new(FileError::Parse {
                    path: p("/etc/children.yaml"),
                    source: yaml(),
                }),
            ),
            (
                "LockError",
                Box::new(LockError::Open {
                    path: p("/kubesup.lock"),
                    source: denied(),
                }),
            ),
            (
                "ProbeError::Read",
                Box::new(ProbeError::Read {
                    path: p("/pki/ca.crt"),
                    source: denied(),
                }),
            ),
            (
                "ProbeError::Client",
                Box::new(ProbeError::Client {
                    url: "https://127.0.0.1:6443/readyz".into(),
                    source: HttpError::Pem {
                        what: "CA certificate",
                        source: PemError::NoCertificate,
                    },
                }),
            ),
            ("DaemonError::DataDir", Box::new(daemon())),
            (
                "DaemonError::Supervise",
                Box::new(crate::daemon::DaemonError::Supervise(supervise())),
            ),
            (
                "DaemonError::Lock",
                Box::new(crate::daemon::DaemonError::Lock(LockError::Open {
                    path: p("/kubesup.lock"),
                    source: denied(),
                })),
            ),
            (
                "DaemonError::Control",
                Box::new(crate::daemon::DaemonError::Control(control())),
            ),
            (
                "ReloadError::Pki",
                Box::new(crate::daemon::ReloadError::Pki(pki())),
            ),
            (
                "ReloadError::Plan",
                Box::new(crate::daemon::ReloadError::Plan(build())),
            ),
            // Joining.
            ("TokenError::Ca", Box::new(token())),
            (
                "TokenError::Malformed",
                Box::new(TokenError::Malformed("no '::' after the CA pin")),
            ),
            ("ClientError::Unreachable", Box::new(client())),
            (
                "ClientError::Csr",
                Box::new(ClientError::Csr(rcgen::Error::CouldNotParseKeyPair)),
            ),
            ("ClientError::Answer", Box::new(ClientError::Answer(json()))),
            ("ClientError::Ca", Box::new(ClientError::Ca(token()))),
            (
                "ClientError::Kubeconfig",
                Box::new(ClientError::Kubeconfig(yaml())),
            ),
            (
                "ServerError::Bind",
                Box::new(ServerError::Bind {
                    addr: "0.0.0.0:9443".parse().unwrap(),
                    source: io::Error::from(io::ErrorKind::AddrInUse),
                }),
            ),
            (
                "ServerError::Malformed",
                Box::new(ServerError::Malformed {
                    what: "join",
                    detail: json(),
                }),
            ),
            ("StoreError::Etcd", Box::new(store())),
            (
                "StoreError::Injected",
                Box::new(StoreError::Injected(StoreOp::ClaimNode)),
            ),
            (
                "TlsError::Read",
                Box::new(TlsError::Read {
                    path: p("/pki/join.crt"),
                    source: denied(),
                }),
            ),
            (
                "TlsError::CertPem",
                Box::new(TlsError::CertPem(io::Error::from(
                    io::ErrorKind::InvalidData,
                ))),
            ),
            (
                "TlsError::Rustls",
                Box::new(TlsError::Rustls {
                    what: "its key",
                    source: rustls::Error::General("bad".into()),
                }),
            ),
            (
                "TlsError::Verifier",
                Box::new(TlsError::Verifier(
                    rustls::server::VerifierBuilderError::NoRootAnchors,
                )),
            ),
            (
                "StartError::Ca",
                Box::new(crate::join::StartError::Ca {
                    kind: CaKind::Cluster,
                    source: pki(),
                }),
            ),
            (
                "StartError::Tls",
                Box::new(crate::join::StartError::Tls(TlsError::KeyPem(denied()))),
            ),
            (
                "StartError::Bind",
                Box::new(crate::join::StartError::Bind(ServerError::Bind {
                    addr: "0.0.0.0:9443".parse().unwrap(),
                    source: io::Error::from(io::ErrorKind::AddrInUse),
                })),
            ),
            // Subcommands.
            ("SetupError::LogFilter", Box::new(setup())),
            (
                "SetupError::Runtime",
                Box::new(cmd::SetupError::Runtime(io::Error::from_raw_os_error(
                    libc::EMFILE,
                ))),
            ),
            (
                "CertsError::Pki",
                Box::new(cmd::certs::CertsError::Pki(pki())),
            ),
            (
                "CertsError::Config",
                Box::new(cmd::certs::CertsError::Config(invalid_config())),
            ),
            (
                "FetchCmdError::Fetch",
                Box::new(cmd::fetch::FetchCmdError::Fetch(fetch())),
            ),
            (
                "FetchCmdError::Setup",
                Box::new(cmd::fetch::FetchCmdError::Setup(setup())),
            ),
            (
                "InstallError::Write",
                Box::new(InstallError::Write {
                    path: p("/etc/systemd/system/kubesup-master.service"),
                    source: denied(),
                }),
            ),
            ("InstallError::Fs", Box::new(InstallError::Fs(fs()))),
            (
                "InstallError::SystemctlRun",
                Box::new(InstallError::SystemctlRun {
                    args: "daemon-reload".into(),
                    source: io::Error::from(io::ErrorKind::NotFound),
                }),
            ),
            (
                "InstallError::Record",
                Box::new(InstallError::Record {
                    path: p("/var/lib/kubesup/install.json"),
                    reason: RecordError::Parse(json()),
                }),
            ),
            ("RecordError", Box::new(RecordError::Read(denied()))),
            (
                "ManpageError",
                Box::new(cmd::manpage::ManpageError::Write {
                    path: p("/usr/share/man/man1/kubesup.1"),
                    source: denied(),
                }),
            ),
            (
                "MasterError::Daemon",
                Box::new(cmd::master::MasterError::Daemon(daemon())),
            ),
            (
                "MasterError::Pki",
                Box::new(cmd::master::MasterError::Pki(pki())),
            ),
            (
                "MasterError::Cgroup",
                Box::new(cmd::master::MasterError::Cgroup {
                    path: p("/sys/fs/cgroup/kubelet"),
                    source: denied(),
                }),
            ),
            (
                "MasterError::Build",
                Box::new(cmd::master::MasterError::Build(build())),
            ),
            (
                "MasterError::Join(Write)",
                Box::new(cmd::master::MasterError::Join(Box::new(
                    cmd::master::join::JoinError::Write {
                        path: p("/var/lib/kubesup/cluster.json"),
                        source: fs(),
                    },
                ))),
            ),
            (
                "MasterError::Removed",
                Box::new(cmd::master::MasterError::Removed {
                    id: "8e9e05c52164694d".into(),
                    data_dir: p("/var/lib/kubesup"),
                }),
            ),
            (
                "JoinError::Material",
                Box::new(cmd::master::join::JoinError::Material(
                    PkiError::ForeignMaterial {
                        path: p("/var/lib/kubesup/pki/ca.crt"),
                    },
                )),
            ),
            (
                "JoinError::Api",
                Box::new(cmd::master::join::JoinError::Api {
                    url: "https://10.0.0.1:9443".into(),
                    source: crate::join::client::ClientError::Refused {
                        status: 403,
                        message: "this is a worker token".into(),
                    },
                }),
            ),
            (
                "JoinError::Record",
                Box::new(cmd::master::join::JoinError::Record {
                    path: p("/var/lib/kubesup/cluster.json"),
                    reason: json().to_string(),
                }),
            ),
            (
                "LeaveError::Quorum",
                Box::new(cmd::master::membership::LeaveError::Quorum(
                    crate::etcd::members::QuorumError::LastVoter {
                        name: "m1".into(),
                        id: 1,
                    },
                )),
            ),
            (
                "LeaveError::Unreachable",
                Box::new(cmd::master::membership::LeaveError::Unreachable(
                    crate::etcd::members::MembersError::Request {
                        what: "member list",
                        source: etcd_client::Error::InvalidArgs("no endpoint".into()),
                    },
                )),
            ),
            (
                "ResetError::Remove",
                Box::new(cmd::reset::ResetError::Remove {
                    path: p("/var/lib/kubesup/pki"),
                    source: denied(),
                }),
            ),
            (
                "ResetError::Prompt",
                Box::new(cmd::reset::ResetError::Prompt(io::Error::from(
                    io::ErrorKind::UnexpectedEof,
                ))),
            ),
            (
                "StatusError::Control",
                Box::new(cmd::status::StatusError::Control(control())),
            ),
            (
                "StatusError::Json",
                Box::new(cmd::status::StatusError::Json(json())),
            ),
            (
                "SuperviseCmdError::File",
                Box::new(cmd::supervise::SuperviseCmdError::File(FileError::Read {
                    path: p("/etc/children.yaml"),
                    source: denied(),
                })),
            ),
            (
                "SuperviseCmdError::Daemon",
                Box::new(cmd::supervise::SuperviseCmdError::Daemon(daemon())),
            ),
            (
                "TokenCmdError::Etcd",
                Box::new(cmd::token::TokenCmdError::Etcd {
                    data_dir: p("/var/lib/kubesup"),
                    source: crate::etcd::EtcdError::Connect {
                        endpoint: "https://127.0.0.1:2379".into(),
                        source: etcd(),
                    },
                }),
            ),
            (
                "TokenCmdError::ReadCa",
                Box::new(cmd::token::TokenCmdError::ReadCa {
                    path: p("/pki/ca.crt"),
                    source: denied(),
                }),
            ),
            (
                "TokenCmdError::Pin",
                Box::new(cmd::token::TokenCmdError::Pin(token())),
            ),
            (
                "TokenCmdError::Store",
                Box::new(cmd::token::TokenCmdError::Store(store())),
            ),
            (
                "EtcdCmdError::Connect",
                Box::new(cmd::etcd::EtcdCmdError::Connect {
                    data_dir: p("/var/lib/kubesup"),
                    source: crate::etcd::EtcdError::Connect {
                        endpoint: "https://127.0.0.1:2379".into(),
                        source: etcd(),
                    },
                }),
            ),
            (
                "EtcdCmdError::List",
                Box::new(cmd::etcd::EtcdCmdError::List {
                    endpoint: "https://127.0.0.1:2379".into(),
                    source: crate::etcd::members::MembersError::Request {
                        what: "member list",
                        source: etcd(),
                    },
                }),
            ),
            (
                "EtcdCmdError::LocalId",
                Box::new(cmd::etcd::EtcdCmdError::LocalId {
                    endpoint: "https://127.0.0.1:2379".into(),
                    source: crate::etcd::members::MembersError::NoHeader,
                }),
            ),
            (
                "EtcdCmdError::UnknownMember",
                Box::new(cmd::etcd::EtcdCmdError::UnknownMember {
                    name: "m9".into(),
                    names: vec!["m1".into(), "m2".into()],
                }),
            ),
            (
                "EtcdCmdError::LocalMember",
                Box::new(cmd::etcd::EtcdCmdError::LocalMember {
                    name: "m1".into(),
                    id: 0xa1,
                }),
            ),
            (
                "EtcdCmdError::Quorum",
                Box::new(cmd::etcd::EtcdCmdError::Quorum(
                    crate::etcd::members::QuorumError::NoQuorum {
                        name: "m1".into(),
                        id: 0xa1,
                        voters_left: 2,
                        healthy_left: 1,
                        needed: 2,
                    },
                )),
            ),
            (
                "EtcdCmdError::Remove",
                Box::new(cmd::etcd::EtcdCmdError::Remove {
                    name: "m2".into(),
                    id: 0xa2,
                    source: crate::etcd::members::MembersError::Request {
                        what: "member remove",
                        source: etcd(),
                    },
                }),
            ),
            (
                "EtcdCmdError::Json",
                Box::new(cmd::etcd::EtcdCmdError::Json(json())),
            ),
            ("WorkerError::Join", Box::new(WorkerError::Join(client()))),
            (
                "WorkerError::Binaries",
                Box::new(WorkerError::Binaries {
                    master: "https://10.0.0.1:9443".into(),
                    source: client(),
                }),
            ),
            (
                "WorkerError::Identity",
                Box::new(WorkerError::Identity {
                    path: p("/var/lib/kubesup/join/node.json"),
                    reason: IdentityError::Read(denied()),
                }),
            ),
            (
                "WorkerError::SaveIdentity",
                Box::new(WorkerError::SaveIdentity(json())),
            ),
            ("WorkerError::Write", Box::new(WorkerError::Write(fs()))),
            (
                "WorkerError::Route",
                Box::new(WorkerError::Route {
                    target: "https://10.0.0.1:9443".into(),
                    source: io::Error::from_raw_os_error(libc::ENETUNREACH),
                }),
            ),
            (
                "JoinTokenError::Reexec",
                Box::new(cmd::jointoken::JoinTokenError::Reexec(
                    io::Error::from_raw_os_error(libc::ENOENT),
                )),
            ),
            (
                "WorkerError::Preflight",
                Box::new(WorkerError::Preflight(PreflightError(vec![
                    "preflight swap: swap is on".into(),
                ]))),
            ),
            (
                "WorkerError::Config",
                Box::new(WorkerError::Config(config())),
            ),
            (
                "WorkerError::ApiLb",
                Box::new(WorkerError::ApiLb(crate::apilb::ApiLbError::Bind {
                    addr: std::net::SocketAddr::from(([127, 0, 0, 1], 6444)),
                    source: io::Error::from_raw_os_error(libc::EADDRINUSE),
                })),
            ),
            ("IdentityError", Box::new(IdentityError::Parse(json()))),
            // What `kubesup` itself returns.
            (
                "run::Error::Worker",
                Box::new(crate::run::Error::Worker(WorkerError::Join(
                    ClientError::Ca(token()),
                ))),
            ),
            (
                "run::Error::Master",
                Box::new(crate::run::Error::Master(cmd::master::MasterError::Daemon(
                    crate::daemon::DaemonError::Supervise(supervise()),
                ))),
            ),
            (
                "run::Error::Token",
                Box::new(crate::run::Error::Token(cmd::token::TokenCmdError::Store(
                    store(),
                ))),
            ),
            (
                "run::Error::Config",
                Box::new(crate::run::Error::Config(config())),
            ),
            // Backup, restore, cluster reset.
            (
                "BackupError::Write",
                Box::new(BackupError::Write {
                    path: p("/b/kubesup-backup.tar"),
                    source: denied(),
                }),
            ),
            ("BackupError::Fs", Box::new(BackupError::Fs(fs()))),
            (
                "BackupError::Crypt(wrong key)",
                Box::new(BackupError::Crypt {
                    path: p("/b.tar"),
                    source: CryptError::WrongKey { path: p("/key") },
                }),
            ),
            (
                "BackupError::Crypt(tampered)",
                Box::new(BackupError::Crypt {
                    path: p("/b.tar"),
                    source: CryptError::Tampered { index: 3 },
                }),
            ),
            (
                "BackupError::Checksum",
                Box::new(BackupError::Checksum {
                    path: p("/b.tar"),
                    member: "etcd.snapshot".into(),
                }),
            ),
            ("BackupError::Keys", Box::new(BackupError::Keys(pki()))),
            (
                "BackupError::EtcdRequest",
                Box::new(BackupError::EtcdRequest {
                    what: "snapshot",
                    source: etcd_client::Error::InvalidArgs("stream reset".into()),
                }),
            ),
            (
                "BackupError::Tool",
                Box::new(BackupError::Tool {
                    tool: p("/d/bin/v1.20.2/etcdctl"),
                    status: "exit status: 1".into(),
                    output: "Error: snapshot missing hash but --skip-hash-check=false".into(),
                }),
            ),
            (
                "BackupError::MoveAside",
                Box::new(BackupError::MoveAside {
                    from: p("/d/etcd"),
                    to: p("/d/before-restore-x/etcd"),
                    source: denied(),
                }),
            ),
            (
                "cmd::backup::BackupCmdError::Backup",
                Box::new(cmd::backup::BackupCmdError::Backup(BackupError::Stalled(
                    Duration::from_secs(60),
                ))),
            ),
            (
                "cmd::restore::RestoreCmdError::Write",
                Box::new(cmd::restore::RestoreCmdError::Write {
                    path: p("/d/cluster.json"),
                    source: fs(),
                }),
            ),
            (
                "run::Error::Restore",
                Box::new(crate::run::Error::Restore(
                    cmd::restore::RestoreCmdError::Backup(BackupError::NotEmpty {
                        data_dir: p("/d"),
                        found: vec!["etcd".into(), "pki".into()],
                    }),
                )),
            ),
            (
                "cmd::master::MasterError::Backup",
                Box::new(cmd::master::MasterError::Backup(
                    BackupError::NothingToReset { data_dir: p("/d") },
                )),
            ),
        ]
    }

    #[test]
    fn every_error_prints_each_cause_once() {
        let mut bad = Vec::new();
        for (name, e) in samples() {
            let repeated = repeated_causes(e.as_ref());
            if !repeated.is_empty() {
                bad.push(format!(
                    "{name}: {:?} repeated in {:?}",
                    repeated,
                    chain(e.as_ref())
                ));
            }
        }
        assert!(bad.is_empty(), "causes printed twice:\n{}", bad.join("\n"));
    }

    #[test]
    fn the_check_catches_a_cause_in_both_the_message_and_the_source() {
        // The old bug: the cause in the message and chained as the source too.
        #[derive(Debug, thiserror::Error)]
        enum Bad {
            #[error("cannot read {path}: {source}")]
            Read { path: PathBuf, source: io::Error },
            #[error("cannot parse: {0}")]
            Parse(#[from] serde_json::Error),
        }
        let read = Bad::Read {
            path: p("/x"),
            source: denied(),
        };
        assert_eq!(
            repeated_causes(&read),
            [denied().to_string()],
            "{}",
            chain(&read)
        );
        assert_eq!(repeated_causes(&Bad::from(json())).len(), 1);
        // And a wrapper of it, however deep, is caught too.
        let deep = crate::run::Error::Worker(cmd::worker::WorkerError::Token(
            cmd::jointoken::JoinTokenError::Reexec(io::Error::other(read)),
        ));
        assert!(!repeated_causes(&deep).is_empty(), "{}", chain(&deep));
    }

    #[test]
    fn a_rendered_chain_names_each_cause() {
        let e = crate::run::Error::Worker(cmd::worker::WorkerError::Write(fs()));
        assert_eq!(
            chain(&e),
            format!(
                "cannot write this node's credentials: cannot write /var/lib/kubesup/pki/ca.crt: {}",
                denied()
            )
        );
        let _ = Duration::ZERO;
    }
}
