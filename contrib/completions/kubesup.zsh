#compdef kubesup

autoload -U is-at-least

_kubesup() {
    typeset -A opt_args
    typeset -a _arguments_options
    local ret=1

    if is-at-least 5.2; then
        _arguments_options=(-s -S -C)
    else
        _arguments_options=(-s -C)
    fi

    local context curcontext="$curcontext" state line
    _arguments "${_arguments_options[@]}" : \
'--log-format=[Log format of kubesup'\''s own output and of forwarded component output]:text|json:_default' \
'--log=[Log filter (tracing-subscriber syntax), e.g. \`info\` or \`kubesup=debug\`]:LOG:_default' \
'-h[Print help (see more with '\''--help'\'')]' \
'--help[Print help (see more with '\''--help'\'')]' \
'-V[Print version]' \
'--version[Print version]' \
":: :_kubesup_commands" \
"*::: :->kubesup" \
&& ret=0
    case $state in
    (kubesup)
        words=($line[1] "${words[@]}")
        (( CURRENT += 1 ))
        curcontext="${curcontext%:*:*}:kubesup-command-$line[1]:"
        case $line[1] in
            (master)
_arguments "${_arguments_options[@]}" : \
'--config=[Config file (YAML); overridden by KUBESUP_* variables, then flags \[default\: /etc/kubesup/config.yaml if it exists\]]:FILE:_files' \
'--data-dir=[Where kubesup keeps binaries, PKI, etcd data, logs and state \[default\: /var/lib/kubesup\]]:DIR:_files' \
'--advertise=[The address other nodes reach this node on]:IP:_default' \
'--node-name=[Node name \[default\: the hostname, lowercased\]]:NAME:_default' \
'--kube-version=[Kubernetes version to fetch and run \[default\: v1.37.1\]]:vX.Y.Z:_default' \
'--mirror=[Release mirror\: https\://, http\://, file\:// or a directory, in the upstream path layout]:URL:_default' \
'--pod-cidr=[Pod network \[default\: 10.2.0.0/16\]]:CIDR:_default' \
'--service-cidr=[Service network; its first address is the API service IP \[default\: 10.3.0.0/24\]]:CIDR:_default' \
'--cluster-dns=[Cluster DNS service IP, inside the service network \[default\: 10.3.0.10\]]:IP:_default' \
'--cluster-domain=[Cluster DNS domain \[default\: cluster.local\]]:DOMAIN:_default' \
'--api-port=[kube-apiserver secure port \[default\: 6443\]]:PORT:_default' \
'--join-port=[Join API port \[default\: 9443\]]:PORT:_default' \
'--schedulable=[Also run containerd, kubelet and kube-proxy on a master, so it takes pods]::BOOL:(true false)' \
'--network=[Pod network backend \[default\: flannel\]]:flannel|none:_default' \
'--flannel-backend=[flannel'\''s backend (config key flannel.backend), the same on every node of a cluster\: vxlan encapsulates pod traffic and works across any network; host-gw routes it plainly and needs every node on one L2 segment \[default\: vxlan\]]:vxlan|host-gw:_default' \
'--key-type=[Certificate key type \[default\: ecdsa-p256\]]:ecdsa-p256|rsa-2048:_default' \
'*--extra-sans=[Extra subject alternative names for the API server certificate (repeatable)]:SAN:_default' \
'--etcd-version=[etcd version to fetch, overriding the release manifest'\''s choice]:vX.Y.Z:_default' \
'*--ignore-preflight=[Skip a preflight check by name (repeatable; \`all\` skips every check)]:NAME:_default' \
'--join=[Join the control plane of an existing cluster through the join API of any of its masters, e.g. https\://10.0.0.1\:9443, with a token from \`kubesup token create --role master\`. Only read while this data dir holds no etcd data\: once it does, this master is a member, and running it again resumes or restarts that member]:URL:_default' \
'--token=[Control-plane join token (prefer --token-file or KUBESUP_TOKEN\: flags are visible in the process list)]:TOKEN:_default' \
'(--token)--token-file=[File holding the control-plane join token]:FILE:_files' \
'--log-format=[Log format of kubesup'\''s own output and of forwarded component output]:text|json:_default' \
'--log=[Log filter (tracing-subscriber syntax), e.g. \`info\` or \`kubesup=debug\`]:LOG:_default' \
'--insecure-skip-verify[Run binaries whose checksum could not be verified. Dangerous; logged loudly]' \
'--force[Let a node name that already joined rejoin with a new key (after \`kubectl delete node\` and \`kubesup reset\` on a reinstalled machine)]' \
'(--join)--cluster-reset[Lost quorum\: start this master'\''s etcd once as a one-member cluster from its own data (etcd'\''s --force-new-cluster). Recorded in the data dir, so a later start with the flag still given does not reset again. The other masters then \`kubesup reset\` and join again]' \
'-h[Print help]' \
'--help[Print help]' \
'-V[Print version]' \
'--version[Print version]' \
&& ret=0
;;
(worker)
_arguments "${_arguments_options[@]}" : \
'--config=[Config file (YAML); overridden by KUBESUP_* variables, then flags \[default\: /etc/kubesup/config.yaml if it exists\]]:FILE:_files' \
'--data-dir=[Where kubesup keeps binaries, PKI, etcd data, logs and state \[default\: /var/lib/kubesup\]]:DIR:_files' \
'--advertise=[The address other nodes reach this node on]:IP:_default' \
'--node-name=[Node name \[default\: the hostname, lowercased\]]:NAME:_default' \
'--kube-version=[Kubernetes version to fetch and run \[default\: v1.37.1\]]:vX.Y.Z:_default' \
'--mirror=[Release mirror\: https\://, http\://, file\:// or a directory, in the upstream path layout]:URL:_default' \
'--pod-cidr=[Pod network \[default\: 10.2.0.0/16\]]:CIDR:_default' \
'--service-cidr=[Service network; its first address is the API service IP \[default\: 10.3.0.0/24\]]:CIDR:_default' \
'--cluster-dns=[Cluster DNS service IP, inside the service network \[default\: 10.3.0.10\]]:IP:_default' \
'--cluster-domain=[Cluster DNS domain \[default\: cluster.local\]]:DOMAIN:_default' \
'--api-port=[kube-apiserver secure port \[default\: 6443\]]:PORT:_default' \
'--join-port=[Join API port \[default\: 9443\]]:PORT:_default' \
'--schedulable=[Also run containerd, kubelet and kube-proxy on a master, so it takes pods]::BOOL:(true false)' \
'--network=[Pod network backend \[default\: flannel\]]:flannel|none:_default' \
'--flannel-backend=[flannel'\''s backend (config key flannel.backend), the same on every node of a cluster\: vxlan encapsulates pod traffic and works across any network; host-gw routes it plainly and needs every node on one L2 segment \[default\: vxlan\]]:vxlan|host-gw:_default' \
'--key-type=[Certificate key type \[default\: ecdsa-p256\]]:ecdsa-p256|rsa-2048:_default' \
'*--extra-sans=[Extra subject alternative names for the API server certificate (repeatable)]:SAN:_default' \
'--etcd-version=[etcd version to fetch, overriding the release manifest'\''s choice]:vX.Y.Z:_default' \
'--join=[Join API of a master, e.g. https\://10.0.0.1\:9443]:URL:_default' \
'--token=[Join token from \`kubesup token create\` (prefer --token-file or KUBESUP_TOKEN\: flags are visible in the process list)]:TOKEN:_default' \
'(--token)--token-file=[File holding the join token]:FILE:_files' \
'*--ignore-preflight=[]:NAME:_default' \
'--log-format=[Log format of kubesup'\''s own output and of forwarded component output]:text|json:_default' \
'--log=[Log filter (tracing-subscriber syntax), e.g. \`info\` or \`kubesup=debug\`]:LOG:_default' \
'--insecure-skip-verify[Run binaries whose checksum could not be verified. Dangerous; logged loudly]' \
'-h[Print help]' \
'--help[Print help]' \
'-V[Print version]' \
'--version[Print version]' \
&& ret=0
;;
(token)
_arguments "${_arguments_options[@]}" : \
'--log-format=[Log format of kubesup'\''s own output and of forwarded component output]:text|json:_default' \
'--log=[Log filter (tracing-subscriber syntax), e.g. \`info\` or \`kubesup=debug\`]:LOG:_default' \
'-h[Print help]' \
'--help[Print help]' \
'-V[Print version]' \
'--version[Print version]' \
":: :_kubesup__subcmd__token_commands" \
"*::: :->token" \
&& ret=0

    case $state in
    (token)
        words=($line[1] "${words[@]}")
        (( CURRENT += 1 ))
        curcontext="${curcontext%:*:*}:kubesup-token-command-$line[1]:"
        case $line[1] in
            (create)
_arguments "${_arguments_options[@]}" : \
'--config=[]:FILE:_files' \
'--data-dir=[]:DIR:_files' \
'--role=[What the token joins\: \`worker\` nodes, or \`master\`s of the control plane (a master token is handed the cluster'\''s CA keys; create one only on a master, and only when you are about to use it)]:ROLE:(master worker)' \
'--ttl=[Lifetime; \`0\` means never expires and must be asked for explicitly. Default\: 24h for a worker token, 1h for a master token]:DURATION:_default' \
'--description=[]:TEXT:_default' \
'--log-format=[Log format of kubesup'\''s own output and of forwarded component output]:text|json:_default' \
'--log=[Log filter (tracing-subscriber syntax), e.g. \`info\` or \`kubesup=debug\`]:LOG:_default' \
'-h[Print help]' \
'--help[Print help]' \
'-V[Print version]' \
'--version[Print version]' \
&& ret=0
;;
(list)
_arguments "${_arguments_options[@]}" : \
'--config=[]:FILE:_files' \
'--data-dir=[]:DIR:_files' \
'--log-format=[Log format of kubesup'\''s own output and of forwarded component output]:text|json:_default' \
'--log=[Log filter (tracing-subscriber syntax), e.g. \`info\` or \`kubesup=debug\`]:LOG:_default' \
'-h[Print help]' \
'--help[Print help]' \
'-V[Print version]' \
'--version[Print version]' \
&& ret=0
;;
(delete)
_arguments "${_arguments_options[@]}" : \
'--config=[]:FILE:_files' \
'--data-dir=[]:DIR:_files' \
'--log-format=[Log format of kubesup'\''s own output and of forwarded component output]:text|json:_default' \
'--log=[Log filter (tracing-subscriber syntax), e.g. \`info\` or \`kubesup=debug\`]:LOG:_default' \
'-h[Print help]' \
'--help[Print help]' \
'-V[Print version]' \
'--version[Print version]' \
':id:_default' \
&& ret=0
;;
(help)
_arguments "${_arguments_options[@]}" : \
":: :_kubesup__subcmd__token__subcmd__help_commands" \
"*::: :->help" \
&& ret=0

    case $state in
    (help)
        words=($line[1] "${words[@]}")
        (( CURRENT += 1 ))
        curcontext="${curcontext%:*:*}:kubesup-token-help-command-$line[1]:"
        case $line[1] in
            (create)
_arguments "${_arguments_options[@]}" : \
&& ret=0
;;
(list)
_arguments "${_arguments_options[@]}" : \
&& ret=0
;;
(delete)
_arguments "${_arguments_options[@]}" : \
&& ret=0
;;
(help)
_arguments "${_arguments_options[@]}" : \
&& ret=0
;;
        esac
    ;;
esac
;;
        esac
    ;;
esac
;;
(etcd)
_arguments "${_arguments_options[@]}" : \
'--log-format=[Log format of kubesup'\''s own output and of forwarded component output]:text|json:_default' \
'--log=[Log filter (tracing-subscriber syntax), e.g. \`info\` or \`kubesup=debug\`]:LOG:_default' \
'-h[Print help]' \
'--help[Print help]' \
'-V[Print version]' \
'--version[Print version]' \
":: :_kubesup__subcmd__etcd_commands" \
"*::: :->etcd" \
&& ret=0

    case $state in
    (etcd)
        words=($line[1] "${words[@]}")
        (( CURRENT += 1 ))
        curcontext="${curcontext%:*:*}:kubesup-etcd-command-$line[1]:"
        case $line[1] in
            (members)
_arguments "${_arguments_options[@]}" : \
'--config=[]:FILE:_files' \
'--data-dir=[]:DIR:_files' \
'--log-format=[Log format of kubesup'\''s own output and of forwarded component output]:text|json:_default' \
'--log=[Log filter (tracing-subscriber syntax), e.g. \`info\` or \`kubesup=debug\`]:LOG:_default' \
'--json[Print JSON instead of a table]' \
'-h[Print help]' \
'--help[Print help]' \
'-V[Print version]' \
'--version[Print version]' \
&& ret=0
;;
(remove)
_arguments "${_arguments_options[@]}" : \
'--config=[]:FILE:_files' \
'--data-dir=[]:DIR:_files' \
'--log-format=[Log format of kubesup'\''s own output and of forwarded component output]:text|json:_default' \
'--log=[Log filter (tracing-subscriber syntax), e.g. \`info\` or \`kubesup=debug\`]:LOG:_default' \
'--force[Remove even if the voters left would lack a healthy quorum]' \
'-h[Print help]' \
'--help[Print help]' \
'-V[Print version]' \
'--version[Print version]' \
':name -- Member name, as `kubesup etcd members` lists it (or the hex ID of an unstarted one):_default' \
&& ret=0
;;
(help)
_arguments "${_arguments_options[@]}" : \
":: :_kubesup__subcmd__etcd__subcmd__help_commands" \
"*::: :->help" \
&& ret=0

    case $state in
    (help)
        words=($line[1] "${words[@]}")
        (( CURRENT += 1 ))
        curcontext="${curcontext%:*:*}:kubesup-etcd-help-command-$line[1]:"
        case $line[1] in
            (members)
_arguments "${_arguments_options[@]}" : \
&& ret=0
;;
(remove)
_arguments "${_arguments_options[@]}" : \
&& ret=0
;;
(help)
_arguments "${_arguments_options[@]}" : \
&& ret=0
;;
        esac
    ;;
esac
;;
        esac
    ;;
esac
;;
(backup)
_arguments "${_arguments_options[@]}" : \
'--config=[]:FILE:_files' \
'--data-dir=[]:DIR:_files' \
'-o+[Write the archive here \[default\: the backup dir, named by time and etcd revision\]]:FILE:_files' \
'--output=[Write the archive here \[default\: the backup dir, named by time and etcd revision\]]:FILE:_files' \
'--encrypt-key-file=[Encrypt the archive (AES-256-GCM) with the key in this file (at least 32 random bytes, e.g. \`head -c 32 /dev/urandom | base64\`). Keep it apart from the backups\: restore needs it]:FILE:_files' \
'--log-format=[Log format of kubesup'\''s own output and of forwarded component output]:text|json:_default' \
'--log=[Log filter (tracing-subscriber syntax), e.g. \`info\` or \`kubesup=debug\`]:LOG:_default' \
'-h[Print help]' \
'--help[Print help]' \
'-V[Print version]' \
'--version[Print version]' \
":: :_kubesup__subcmd__backup_commands" \
"*::: :->backup" \
&& ret=0

    case $state in
    (backup)
        words=($line[1] "${words[@]}")
        (( CURRENT += 1 ))
        curcontext="${curcontext%:*:*}:kubesup-backup-command-$line[1]:"
        case $line[1] in
            (list)
_arguments "${_arguments_options[@]}" : \
'--config=[]:FILE:_files' \
'--data-dir=[]:DIR:_files' \
'--log-format=[Log format of kubesup'\''s own output and of forwarded component output]:text|json:_default' \
'--log=[Log filter (tracing-subscriber syntax), e.g. \`info\` or \`kubesup=debug\`]:LOG:_default' \
'--json[Print JSON instead of a table]' \
'-h[Print help]' \
'--help[Print help]' \
'-V[Print version]' \
'--version[Print version]' \
&& ret=0
;;
(help)
_arguments "${_arguments_options[@]}" : \
":: :_kubesup__subcmd__backup__subcmd__help_commands" \
"*::: :->help" \
&& ret=0

    case $state in
    (help)
        words=($line[1] "${words[@]}")
        (( CURRENT += 1 ))
        curcontext="${curcontext%:*:*}:kubesup-backup-help-command-$line[1]:"
        case $line[1] in
            (list)
_arguments "${_arguments_options[@]}" : \
&& ret=0
;;
(help)
_arguments "${_arguments_options[@]}" : \
&& ret=0
;;
        esac
    ;;
esac
;;
        esac
    ;;
esac
;;
(restore)
_arguments "${_arguments_options[@]}" : \
'--config=[Config file (YAML); overridden by KUBESUP_* variables, then flags \[default\: /etc/kubesup/config.yaml if it exists\]]:FILE:_files' \
'--data-dir=[Where kubesup keeps binaries, PKI, etcd data, logs and state \[default\: /var/lib/kubesup\]]:DIR:_files' \
'--advertise=[The address other nodes reach this node on]:IP:_default' \
'--node-name=[Node name \[default\: the hostname, lowercased\]]:NAME:_default' \
'--kube-version=[Kubernetes version to fetch and run \[default\: v1.37.1\]]:vX.Y.Z:_default' \
'--mirror=[Release mirror\: https\://, http\://, file\:// or a directory, in the upstream path layout]:URL:_default' \
'--pod-cidr=[Pod network \[default\: 10.2.0.0/16\]]:CIDR:_default' \
'--service-cidr=[Service network; its first address is the API service IP \[default\: 10.3.0.0/24\]]:CIDR:_default' \
'--cluster-dns=[Cluster DNS service IP, inside the service network \[default\: 10.3.0.10\]]:IP:_default' \
'--cluster-domain=[Cluster DNS domain \[default\: cluster.local\]]:DOMAIN:_default' \
'--api-port=[kube-apiserver secure port \[default\: 6443\]]:PORT:_default' \
'--join-port=[Join API port \[default\: 9443\]]:PORT:_default' \
'--schedulable=[Also run containerd, kubelet and kube-proxy on a master, so it takes pods]::BOOL:(true false)' \
'--network=[Pod network backend \[default\: flannel\]]:flannel|none:_default' \
'--flannel-backend=[flannel'\''s backend (config key flannel.backend), the same on every node of a cluster\: vxlan encapsulates pod traffic and works across any network; host-gw routes it plainly and needs every node on one L2 segment \[default\: vxlan\]]:vxlan|host-gw:_default' \
'--key-type=[Certificate key type \[default\: ecdsa-p256\]]:ecdsa-p256|rsa-2048:_default' \
'*--extra-sans=[Extra subject alternative names for the API server certificate (repeatable)]:SAN:_default' \
'--etcd-version=[etcd version to fetch, overriding the release manifest'\''s choice]:vX.Y.Z:_default' \
'--encrypt-key-file=[The key file the archive was encrypted with]:FILE:_files' \
'--log-format=[Log format of kubesup'\''s own output and of forwarded component output]:text|json:_default' \
'--log=[Log filter (tracing-subscriber syntax), e.g. \`info\` or \`kubesup=debug\`]:LOG:_default' \
'--insecure-skip-verify[Run binaries whose checksum could not be verified. Dangerous; logged loudly]' \
'--force[Restore over a data dir that holds a node\: its old state is moved aside (kept, and its path printed), never deleted]' \
'-h[Print help]' \
'--help[Print help]' \
'-V[Print version]' \
'--version[Print version]' \
':file -- The archive from `kubesup backup`:_files' \
&& ret=0
;;
(status)
_arguments "${_arguments_options[@]}" : \
'--config=[]:FILE:_files' \
'--data-dir=[]:DIR:_files' \
'--log-format=[Log format of kubesup'\''s own output and of forwarded component output]:text|json:_default' \
'--log=[Log filter (tracing-subscriber syntax), e.g. \`info\` or \`kubesup=debug\`]:LOG:_default' \
'--json[Print JSON instead of a table]' \
'-h[Print help]' \
'--help[Print help]' \
'-V[Print version]' \
'--version[Print version]' \
&& ret=0
;;
(certs)
_arguments "${_arguments_options[@]}" : \
'--log-format=[Log format of kubesup'\''s own output and of forwarded component output]:text|json:_default' \
'--log=[Log filter (tracing-subscriber syntax), e.g. \`info\` or \`kubesup=debug\`]:LOG:_default' \
'-h[Print help]' \
'--help[Print help]' \
'-V[Print version]' \
'--version[Print version]' \
":: :_kubesup__subcmd__certs_commands" \
"*::: :->certs" \
&& ret=0

    case $state in
    (certs)
        words=($line[1] "${words[@]}")
        (( CURRENT += 1 ))
        curcontext="${curcontext%:*:*}:kubesup-certs-command-$line[1]:"
        case $line[1] in
            (generate)
_arguments "${_arguments_options[@]}" : \
'--config=[Config file (YAML); overridden by KUBESUP_* variables, then flags \[default\: /etc/kubesup/config.yaml if it exists\]]:FILE:_files' \
'--data-dir=[Where kubesup keeps binaries, PKI, etcd data, logs and state \[default\: /var/lib/kubesup\]]:DIR:_files' \
'--advertise=[The address other nodes reach this node on]:IP:_default' \
'--node-name=[Node name \[default\: the hostname, lowercased\]]:NAME:_default' \
'--kube-version=[Kubernetes version to fetch and run \[default\: v1.37.1\]]:vX.Y.Z:_default' \
'--mirror=[Release mirror\: https\://, http\://, file\:// or a directory, in the upstream path layout]:URL:_default' \
'--pod-cidr=[Pod network \[default\: 10.2.0.0/16\]]:CIDR:_default' \
'--service-cidr=[Service network; its first address is the API service IP \[default\: 10.3.0.0/24\]]:CIDR:_default' \
'--cluster-dns=[Cluster DNS service IP, inside the service network \[default\: 10.3.0.10\]]:IP:_default' \
'--cluster-domain=[Cluster DNS domain \[default\: cluster.local\]]:DOMAIN:_default' \
'--api-port=[kube-apiserver secure port \[default\: 6443\]]:PORT:_default' \
'--join-port=[Join API port \[default\: 9443\]]:PORT:_default' \
'--schedulable=[Also run containerd, kubelet and kube-proxy on a master, so it takes pods]::BOOL:(true false)' \
'--network=[Pod network backend \[default\: flannel\]]:flannel|none:_default' \
'--flannel-backend=[flannel'\''s backend (config key flannel.backend), the same on every node of a cluster\: vxlan encapsulates pod traffic and works across any network; host-gw routes it plainly and needs every node on one L2 segment \[default\: vxlan\]]:vxlan|host-gw:_default' \
'--key-type=[Certificate key type \[default\: ecdsa-p256\]]:ecdsa-p256|rsa-2048:_default' \
'*--extra-sans=[Extra subject alternative names for the API server certificate (repeatable)]:SAN:_default' \
'--etcd-version=[etcd version to fetch, overriding the release manifest'\''s choice]:vX.Y.Z:_default' \
'--log-format=[Log format of kubesup'\''s own output and of forwarded component output]:text|json:_default' \
'--log=[Log filter (tracing-subscriber syntax), e.g. \`info\` or \`kubesup=debug\`]:LOG:_default' \
'--insecure-skip-verify[Run binaries whose checksum could not be verified. Dangerous; logged loudly]' \
'-h[Print help]' \
'--help[Print help]' \
'-V[Print version]' \
'--version[Print version]' \
&& ret=0
;;
(check)
_arguments "${_arguments_options[@]}" : \
'--config=[]:FILE:_files' \
'--data-dir=[]:DIR:_files' \
'--log-format=[Log format of kubesup'\''s own output and of forwarded component output]:text|json:_default' \
'--log=[Log filter (tracing-subscriber syntax), e.g. \`info\` or \`kubesup=debug\`]:LOG:_default' \
'--json[]' \
'-h[Print help]' \
'--help[Print help]' \
'-V[Print version]' \
'--version[Print version]' \
&& ret=0
;;
(rotate)
_arguments "${_arguments_options[@]}" : \
'--config=[Config file (YAML); overridden by KUBESUP_* variables, then flags \[default\: /etc/kubesup/config.yaml if it exists\]]:FILE:_files' \
'--data-dir=[Where kubesup keeps binaries, PKI, etcd data, logs and state \[default\: /var/lib/kubesup\]]:DIR:_files' \
'--advertise=[The address other nodes reach this node on]:IP:_default' \
'--node-name=[Node name \[default\: the hostname, lowercased\]]:NAME:_default' \
'--kube-version=[Kubernetes version to fetch and run \[default\: v1.37.1\]]:vX.Y.Z:_default' \
'--mirror=[Release mirror\: https\://, http\://, file\:// or a directory, in the upstream path layout]:URL:_default' \
'--pod-cidr=[Pod network \[default\: 10.2.0.0/16\]]:CIDR:_default' \
'--service-cidr=[Service network; its first address is the API service IP \[default\: 10.3.0.0/24\]]:CIDR:_default' \
'--cluster-dns=[Cluster DNS service IP, inside the service network \[default\: 10.3.0.10\]]:IP:_default' \
'--cluster-domain=[Cluster DNS domain \[default\: cluster.local\]]:DOMAIN:_default' \
'--api-port=[kube-apiserver secure port \[default\: 6443\]]:PORT:_default' \
'--join-port=[Join API port \[default\: 9443\]]:PORT:_default' \
'--schedulable=[Also run containerd, kubelet and kube-proxy on a master, so it takes pods]::BOOL:(true false)' \
'--network=[Pod network backend \[default\: flannel\]]:flannel|none:_default' \
'--flannel-backend=[flannel'\''s backend (config key flannel.backend), the same on every node of a cluster\: vxlan encapsulates pod traffic and works across any network; host-gw routes it plainly and needs every node on one L2 segment \[default\: vxlan\]]:vxlan|host-gw:_default' \
'--key-type=[Certificate key type \[default\: ecdsa-p256\]]:ecdsa-p256|rsa-2048:_default' \
'*--extra-sans=[Extra subject alternative names for the API server certificate (repeatable)]:SAN:_default' \
'--etcd-version=[etcd version to fetch, overriding the release manifest'\''s choice]:vX.Y.Z:_default' \
'--log-format=[Log format of kubesup'\''s own output and of forwarded component output]:text|json:_default' \
'--log=[Log filter (tracing-subscriber syntax), e.g. \`info\` or \`kubesup=debug\`]:LOG:_default' \
'--insecure-skip-verify[Run binaries whose checksum could not be verified. Dangerous; logged loudly]' \
'--all[Re-issue every leaf]' \
'-h[Print help]' \
'--help[Print help]' \
'-V[Print version]' \
'--version[Print version]' \
'::name -- Leaf to re-issue, e.g. apiserver:_default' \
&& ret=0
;;
(help)
_arguments "${_arguments_options[@]}" : \
":: :_kubesup__subcmd__certs__subcmd__help_commands" \
"*::: :->help" \
&& ret=0

    case $state in
    (help)
        words=($line[1] "${words[@]}")
        (( CURRENT += 1 ))
        curcontext="${curcontext%:*:*}:kubesup-certs-help-command-$line[1]:"
        case $line[1] in
            (generate)
_arguments "${_arguments_options[@]}" : \
&& ret=0
;;
(check)
_arguments "${_arguments_options[@]}" : \
&& ret=0
;;
(rotate)
_arguments "${_arguments_options[@]}" : \
&& ret=0
;;
(help)
_arguments "${_arguments_options[@]}" : \
&& ret=0
;;
        esac
    ;;
esac
;;
        esac
    ;;
esac
;;
(fetch)
_arguments "${_arguments_options[@]}" : \
'--config=[Config file (YAML); overridden by KUBESUP_* variables, then flags \[default\: /etc/kubesup/config.yaml if it exists\]]:FILE:_files' \
'--data-dir=[Where kubesup keeps binaries, PKI, etcd data, logs and state \[default\: /var/lib/kubesup\]]:DIR:_files' \
'--advertise=[The address other nodes reach this node on]:IP:_default' \
'--node-name=[Node name \[default\: the hostname, lowercased\]]:NAME:_default' \
'--kube-version=[Kubernetes version to fetch and run \[default\: v1.37.1\]]:vX.Y.Z:_default' \
'--mirror=[Release mirror\: https\://, http\://, file\:// or a directory, in the upstream path layout]:URL:_default' \
'--pod-cidr=[Pod network \[default\: 10.2.0.0/16\]]:CIDR:_default' \
'--service-cidr=[Service network; its first address is the API service IP \[default\: 10.3.0.0/24\]]:CIDR:_default' \
'--cluster-dns=[Cluster DNS service IP, inside the service network \[default\: 10.3.0.10\]]:IP:_default' \
'--cluster-domain=[Cluster DNS domain \[default\: cluster.local\]]:DOMAIN:_default' \
'--api-port=[kube-apiserver secure port \[default\: 6443\]]:PORT:_default' \
'--join-port=[Join API port \[default\: 9443\]]:PORT:_default' \
'--schedulable=[Also run containerd, kubelet and kube-proxy on a master, so it takes pods]::BOOL:(true false)' \
'--network=[Pod network backend \[default\: flannel\]]:flannel|none:_default' \
'--flannel-backend=[flannel'\''s backend (config key flannel.backend), the same on every node of a cluster\: vxlan encapsulates pod traffic and works across any network; host-gw routes it plainly and needs every node on one L2 segment \[default\: vxlan\]]:vxlan|host-gw:_default' \
'--key-type=[Certificate key type \[default\: ecdsa-p256\]]:ecdsa-p256|rsa-2048:_default' \
'*--extra-sans=[Extra subject alternative names for the API server certificate (repeatable)]:SAN:_default' \
'--etcd-version=[etcd version to fetch, overriding the release manifest'\''s choice]:vX.Y.Z:_default' \
'--role=[Node role to fetch for]:ROLE:(master worker)' \
'(--from-bundle)--bundle=[Write everything fetched into one tar, with its manifest and hashes, for air-gapped nodes]:FILE:_files' \
'--from-bundle=[Load binaries from a bundle made by \`--bundle\` instead of the network]:FILE:_files' \
'--log-format=[Log format of kubesup'\''s own output and of forwarded component output]:text|json:_default' \
'--log=[Log filter (tracing-subscriber syntax), e.g. \`info\` or \`kubesup=debug\`]:LOG:_default' \
'--insecure-skip-verify[Run binaries whose checksum could not be verified. Dangerous; logged loudly]' \
'--with-runtime[Also fetch containerd, runc and the CNI plugins]' \
'(--bundle --from-bundle)--dry-run[Print each download (name, URL, where its checksum comes from, what it provides) without fetching anything]' \
'-h[Print help]' \
'--help[Print help]' \
'-V[Print version]' \
'--version[Print version]' \
&& ret=0
;;
(install)
_arguments "${_arguments_options[@]}" : \
'--log-format=[Log format of kubesup'\''s own output and of forwarded component output]:text|json:_default' \
'--log=[Log filter (tracing-subscriber syntax), e.g. \`info\` or \`kubesup=debug\`]:LOG:_default' \
'-h[Print help]' \
'--help[Print help]' \
'-V[Print version]' \
'--version[Print version]' \
":: :_kubesup__subcmd__install_commands" \
"*::: :->install" \
&& ret=0

    case $state in
    (install)
        words=($line[1] "${words[@]}")
        (( CURRENT += 1 ))
        curcontext="${curcontext%:*:*}:kubesup-install-command-$line[1]:"
        case $line[1] in
            (master)
_arguments "${_arguments_options[@]}" : \
'--config=[Config file (YAML); overridden by KUBESUP_* variables, then flags \[default\: /etc/kubesup/config.yaml if it exists\]]:FILE:_files' \
'--data-dir=[Where kubesup keeps binaries, PKI, etcd data, logs and state \[default\: /var/lib/kubesup\]]:DIR:_files' \
'--advertise=[The address other nodes reach this node on]:IP:_default' \
'--node-name=[Node name \[default\: the hostname, lowercased\]]:NAME:_default' \
'--kube-version=[Kubernetes version to fetch and run \[default\: v1.37.1\]]:vX.Y.Z:_default' \
'--mirror=[Release mirror\: https\://, http\://, file\:// or a directory, in the upstream path layout]:URL:_default' \
'--pod-cidr=[Pod network \[default\: 10.2.0.0/16\]]:CIDR:_default' \
'--service-cidr=[Service network; its first address is the API service IP \[default\: 10.3.0.0/24\]]:CIDR:_default' \
'--cluster-dns=[Cluster DNS service IP, inside the service network \[default\: 10.3.0.10\]]:IP:_default' \
'--cluster-domain=[Cluster DNS domain \[default\: cluster.local\]]:DOMAIN:_default' \
'--api-port=[kube-apiserver secure port \[default\: 6443\]]:PORT:_default' \
'--join-port=[Join API port \[default\: 9443\]]:PORT:_default' \
'--schedulable=[Also run containerd, kubelet and kube-proxy on a master, so it takes pods]::BOOL:(true false)' \
'--network=[Pod network backend \[default\: flannel\]]:flannel|none:_default' \
'--flannel-backend=[flannel'\''s backend (config key flannel.backend), the same on every node of a cluster\: vxlan encapsulates pod traffic and works across any network; host-gw routes it plainly and needs every node on one L2 segment \[default\: vxlan\]]:vxlan|host-gw:_default' \
'--key-type=[Certificate key type \[default\: ecdsa-p256\]]:ecdsa-p256|rsa-2048:_default' \
'*--extra-sans=[Extra subject alternative names for the API server certificate (repeatable)]:SAN:_default' \
'--etcd-version=[etcd version to fetch, overriding the release manifest'\''s choice]:vX.Y.Z:_default' \
'*--ignore-preflight=[Skip a preflight check by name (repeatable; \`all\` skips every check)]:NAME:_default' \
'--join=[Join the control plane of an existing cluster through the join API of any of its masters, e.g. https\://10.0.0.1\:9443, with a token from \`kubesup token create --role master\`. Only read while this data dir holds no etcd data\: once it does, this master is a member, and running it again resumes or restarts that member]:URL:_default' \
'--token=[Control-plane join token (prefer --token-file or KUBESUP_TOKEN\: flags are visible in the process list)]:TOKEN:_default' \
'(--token)--token-file=[File holding the control-plane join token]:FILE:_files' \
'--root=[Install below this directory instead of / (building an image); nothing is started]:DIR:_files' \
'--log-format=[Log format of kubesup'\''s own output and of forwarded component output]:text|json:_default' \
'--log=[Log filter (tracing-subscriber syntax), e.g. \`info\` or \`kubesup=debug\`]:LOG:_default' \
'--insecure-skip-verify[Run binaries whose checksum could not be verified. Dangerous; logged loudly]' \
'--force[Let a node name that already joined rejoin with a new key (after \`kubectl delete node\` and \`kubesup reset\` on a reinstalled machine)]' \
'(--join)--cluster-reset[Lost quorum\: start this master'\''s etcd once as a one-member cluster from its own data (etcd'\''s --force-new-cluster). Recorded in the data dir, so a later start with the flag still given does not reset again. The other masters then \`kubesup reset\` and join again]' \
'--overwrite[Replace an existing, different config or unit (the old file is kept as FILE.bak)]' \
'-h[Print help]' \
'--help[Print help]' \
'-V[Print version]' \
'--version[Print version]' \
&& ret=0
;;
(worker)
_arguments "${_arguments_options[@]}" : \
'--config=[Config file (YAML); overridden by KUBESUP_* variables, then flags \[default\: /etc/kubesup/config.yaml if it exists\]]:FILE:_files' \
'--data-dir=[Where kubesup keeps binaries, PKI, etcd data, logs and state \[default\: /var/lib/kubesup\]]:DIR:_files' \
'--advertise=[The address other nodes reach this node on]:IP:_default' \
'--node-name=[Node name \[default\: the hostname, lowercased\]]:NAME:_default' \
'--kube-version=[Kubernetes version to fetch and run \[default\: v1.37.1\]]:vX.Y.Z:_default' \
'--mirror=[Release mirror\: https\://, http\://, file\:// or a directory, in the upstream path layout]:URL:_default' \
'--pod-cidr=[Pod network \[default\: 10.2.0.0/16\]]:CIDR:_default' \
'--service-cidr=[Service network; its first address is the API service IP \[default\: 10.3.0.0/24\]]:CIDR:_default' \
'--cluster-dns=[Cluster DNS service IP, inside the service network \[default\: 10.3.0.10\]]:IP:_default' \
'--cluster-domain=[Cluster DNS domain \[default\: cluster.local\]]:DOMAIN:_default' \
'--api-port=[kube-apiserver secure port \[default\: 6443\]]:PORT:_default' \
'--join-port=[Join API port \[default\: 9443\]]:PORT:_default' \
'--schedulable=[Also run containerd, kubelet and kube-proxy on a master, so it takes pods]::BOOL:(true false)' \
'--network=[Pod network backend \[default\: flannel\]]:flannel|none:_default' \
'--flannel-backend=[flannel'\''s backend (config key flannel.backend), the same on every node of a cluster\: vxlan encapsulates pod traffic and works across any network; host-gw routes it plainly and needs every node on one L2 segment \[default\: vxlan\]]:vxlan|host-gw:_default' \
'--key-type=[Certificate key type \[default\: ecdsa-p256\]]:ecdsa-p256|rsa-2048:_default' \
'*--extra-sans=[Extra subject alternative names for the API server certificate (repeatable)]:SAN:_default' \
'--etcd-version=[etcd version to fetch, overriding the release manifest'\''s choice]:vX.Y.Z:_default' \
'--join=[Join API of a master, e.g. https\://10.0.0.1\:9443]:URL:_default' \
'--token=[Join token from \`kubesup token create\` (prefer --token-file or KUBESUP_TOKEN\: flags are visible in the process list)]:TOKEN:_default' \
'(--token)--token-file=[File holding the join token]:FILE:_files' \
'*--ignore-preflight=[]:NAME:_default' \
'--root=[Install below this directory instead of / (building an image); nothing is started]:DIR:_files' \
'--log-format=[Log format of kubesup'\''s own output and of forwarded component output]:text|json:_default' \
'--log=[Log filter (tracing-subscriber syntax), e.g. \`info\` or \`kubesup=debug\`]:LOG:_default' \
'--insecure-skip-verify[Run binaries whose checksum could not be verified. Dangerous; logged loudly]' \
'--overwrite[Replace an existing, different config or unit (the old file is kept as FILE.bak)]' \
'-h[Print help]' \
'--help[Print help]' \
'-V[Print version]' \
'--version[Print version]' \
&& ret=0
;;
(help)
_arguments "${_arguments_options[@]}" : \
":: :_kubesup__subcmd__install__subcmd__help_commands" \
"*::: :->help" \
&& ret=0

    case $state in
    (help)
        words=($line[1] "${words[@]}")
        (( CURRENT += 1 ))
        curcontext="${curcontext%:*:*}:kubesup-install-help-command-$line[1]:"
        case $line[1] in
            (master)
_arguments "${_arguments_options[@]}" : \
&& ret=0
;;
(worker)
_arguments "${_arguments_options[@]}" : \
&& ret=0
;;
(help)
_arguments "${_arguments_options[@]}" : \
&& ret=0
;;
        esac
    ;;
esac
;;
        esac
    ;;
esac
;;
(uninstall)
_arguments "${_arguments_options[@]}" : \
'--root=[The root \`kubesup install --root\` used]:DIR:_files' \
'--log-format=[Log format of kubesup'\''s own output and of forwarded component output]:text|json:_default' \
'--log=[Log filter (tracing-subscriber syntax), e.g. \`info\` or \`kubesup=debug\`]:LOG:_default' \
'-h[Print help]' \
'--help[Print help]' \
'-V[Print version]' \
'--version[Print version]' \
&& ret=0
;;
(reset)
_arguments "${_arguments_options[@]}" : \
'--config=[]:FILE:_files' \
'--data-dir=[]:DIR:_files' \
'--log-format=[Log format of kubesup'\''s own output and of forwarded component output]:text|json:_default' \
'--log=[Log filter (tracing-subscriber syntax), e.g. \`info\` or \`kubesup=debug\`]:LOG:_default' \
'-y[Do not ask for confirmation]' \
'--yes[Do not ask for confirmation]' \
'--force[On a master of several\: reset even when taking its etcd member out would leave the others without a quorum, or when they cannot be reached]' \
'-h[Print help]' \
'--help[Print help]' \
'-V[Print version]' \
'--version[Print version]' \
&& ret=0
;;
(config)
_arguments "${_arguments_options[@]}" : \
'--log-format=[Log format of kubesup'\''s own output and of forwarded component output]:text|json:_default' \
'--log=[Log filter (tracing-subscriber syntax), e.g. \`info\` or \`kubesup=debug\`]:LOG:_default' \
'-h[Print help]' \
'--help[Print help]' \
'-V[Print version]' \
'--version[Print version]' \
":: :_kubesup__subcmd__config_commands" \
"*::: :->config" \
&& ret=0

    case $state in
    (config)
        words=($line[1] "${words[@]}")
        (( CURRENT += 1 ))
        curcontext="${curcontext%:*:*}:kubesup-config-command-$line[1]:"
        case $line[1] in
            (default)
_arguments "${_arguments_options[@]}" : \
'--log-format=[Log format of kubesup'\''s own output and of forwarded component output]:text|json:_default' \
'--log=[Log filter (tracing-subscriber syntax), e.g. \`info\` or \`kubesup=debug\`]:LOG:_default' \
'-h[Print help]' \
'--help[Print help]' \
'-V[Print version]' \
'--version[Print version]' \
&& ret=0
;;
(check)
_arguments "${_arguments_options[@]}" : \
'--config=[Config file (YAML); overridden by KUBESUP_* variables, then flags \[default\: /etc/kubesup/config.yaml if it exists\]]:FILE:_files' \
'--data-dir=[Where kubesup keeps binaries, PKI, etcd data, logs and state \[default\: /var/lib/kubesup\]]:DIR:_files' \
'--advertise=[The address other nodes reach this node on]:IP:_default' \
'--node-name=[Node name \[default\: the hostname, lowercased\]]:NAME:_default' \
'--kube-version=[Kubernetes version to fetch and run \[default\: v1.37.1\]]:vX.Y.Z:_default' \
'--mirror=[Release mirror\: https\://, http\://, file\:// or a directory, in the upstream path layout]:URL:_default' \
'--pod-cidr=[Pod network \[default\: 10.2.0.0/16\]]:CIDR:_default' \
'--service-cidr=[Service network; its first address is the API service IP \[default\: 10.3.0.0/24\]]:CIDR:_default' \
'--cluster-dns=[Cluster DNS service IP, inside the service network \[default\: 10.3.0.10\]]:IP:_default' \
'--cluster-domain=[Cluster DNS domain \[default\: cluster.local\]]:DOMAIN:_default' \
'--api-port=[kube-apiserver secure port \[default\: 6443\]]:PORT:_default' \
'--join-port=[Join API port \[default\: 9443\]]:PORT:_default' \
'--schedulable=[Also run containerd, kubelet and kube-proxy on a master, so it takes pods]::BOOL:(true false)' \
'--network=[Pod network backend \[default\: flannel\]]:flannel|none:_default' \
'--flannel-backend=[flannel'\''s backend (config key flannel.backend), the same on every node of a cluster\: vxlan encapsulates pod traffic and works across any network; host-gw routes it plainly and needs every node on one L2 segment \[default\: vxlan\]]:vxlan|host-gw:_default' \
'--key-type=[Certificate key type \[default\: ecdsa-p256\]]:ecdsa-p256|rsa-2048:_default' \
'*--extra-sans=[Extra subject alternative names for the API server certificate (repeatable)]:SAN:_default' \
'--etcd-version=[etcd version to fetch, overriding the release manifest'\''s choice]:vX.Y.Z:_default' \
'--log-format=[Log format of kubesup'\''s own output and of forwarded component output]:text|json:_default' \
'--log=[Log filter (tracing-subscriber syntax), e.g. \`info\` or \`kubesup=debug\`]:LOG:_default' \
'--insecure-skip-verify[Run binaries whose checksum could not be verified. Dangerous; logged loudly]' \
'-h[Print help]' \
'--help[Print help]' \
'-V[Print version]' \
'--version[Print version]' \
':file:_files' \
&& ret=0
;;
(help)
_arguments "${_arguments_options[@]}" : \
":: :_kubesup__subcmd__config__subcmd__help_commands" \
"*::: :->help" \
&& ret=0

    case $state in
    (help)
        words=($line[1] "${words[@]}")
        (( CURRENT += 1 ))
        curcontext="${curcontext%:*:*}:kubesup-config-help-command-$line[1]:"
        case $line[1] in
            (default)
_arguments "${_arguments_options[@]}" : \
&& ret=0
;;
(check)
_arguments "${_arguments_options[@]}" : \
&& ret=0
;;
(help)
_arguments "${_arguments_options[@]}" : \
&& ret=0
;;
        esac
    ;;
esac
;;
        esac
    ;;
esac
;;
(completions)
_arguments "${_arguments_options[@]}" : \
'--log-format=[Log format of kubesup'\''s own output and of forwarded component output]:text|json:_default' \
'--log=[Log filter (tracing-subscriber syntax), e.g. \`info\` or \`kubesup=debug\`]:LOG:_default' \
'-h[Print help]' \
'--help[Print help]' \
'-V[Print version]' \
'--version[Print version]' \
':shell:(bash elvish fish powershell zsh)' \
&& ret=0
;;
(version)
_arguments "${_arguments_options[@]}" : \
'--log-format=[Log format of kubesup'\''s own output and of forwarded component output]:text|json:_default' \
'--log=[Log filter (tracing-subscriber syntax), e.g. \`info\` or \`kubesup=debug\`]:LOG:_default' \
'-h[Print help]' \
'--help[Print help]' \
'-V[Print version]' \
'--version[Print version]' \
&& ret=0
;;
(supervise)
_arguments "${_arguments_options[@]}" : \
'--data-dir=[Data dir for the lock, control socket, pid record and logs]:DIR:_files' \
'--log-format=[Log format of kubesup'\''s own output and of forwarded component output]:text|json:_default' \
'--log=[Log filter (tracing-subscriber syntax), e.g. \`info\` or \`kubesup=debug\`]:LOG:_default' \
'-h[Print help]' \
'--help[Print help]' \
'-V[Print version]' \
'--version[Print version]' \
':file -- The children file (see `kubesup supervise --help` for its format):_files' \
&& ret=0
;;
(manpage)
_arguments "${_arguments_options[@]}" : \
'--out-dir=[]:OUT_DIR:_files' \
'--log-format=[Log format of kubesup'\''s own output and of forwarded component output]:text|json:_default' \
'--log=[Log filter (tracing-subscriber syntax), e.g. \`info\` or \`kubesup=debug\`]:LOG:_default' \
'-h[Print help]' \
'--help[Print help]' \
'-V[Print version]' \
'--version[Print version]' \
&& ret=0
;;
(help)
_arguments "${_arguments_options[@]}" : \
":: :_kubesup__subcmd__help_commands" \
"*::: :->help" \
&& ret=0

    case $state in
    (help)
        words=($line[1] "${words[@]}")
        (( CURRENT += 1 ))
        curcontext="${curcontext%:*:*}:kubesup-help-command-$line[1]:"
        case $line[1] in
            (master)
_arguments "${_arguments_options[@]}" : \
&& ret=0
;;
(worker)
_arguments "${_arguments_options[@]}" : \
&& ret=0
;;
(token)
_arguments "${_arguments_options[@]}" : \
":: :_kubesup__subcmd__help__subcmd__token_commands" \
"*::: :->token" \
&& ret=0

    case $state in
    (token)
        words=($line[1] "${words[@]}")
        (( CURRENT += 1 ))
        curcontext="${curcontext%:*:*}:kubesup-help-token-command-$line[1]:"
        case $line[1] in
            (create)
_arguments "${_arguments_options[@]}" : \
&& ret=0
;;
(list)
_arguments "${_arguments_options[@]}" : \
&& ret=0
;;
(delete)
_arguments "${_arguments_options[@]}" : \
&& ret=0
;;
        esac
    ;;
esac
;;
(etcd)
_arguments "${_arguments_options[@]}" : \
":: :_kubesup__subcmd__help__subcmd__etcd_commands" \
"*::: :->etcd" \
&& ret=0

    case $state in
    (etcd)
        words=($line[1] "${words[@]}")
        (( CURRENT += 1 ))
        curcontext="${curcontext%:*:*}:kubesup-help-etcd-command-$line[1]:"
        case $line[1] in
            (members)
_arguments "${_arguments_options[@]}" : \
&& ret=0
;;
(remove)
_arguments "${_arguments_options[@]}" : \
&& ret=0
;;
        esac
    ;;
esac
;;
(backup)
_arguments "${_arguments_options[@]}" : \
":: :_kubesup__subcmd__help__subcmd__backup_commands" \
"*::: :->backup" \
&& ret=0

    case $state in
    (backup)
        words=($line[1] "${words[@]}")
        (( CURRENT += 1 ))
        curcontext="${curcontext%:*:*}:kubesup-help-backup-command-$line[1]:"
        case $line[1] in
            (list)
_arguments "${_arguments_options[@]}" : \
&& ret=0
;;
        esac
    ;;
esac
;;
(restore)
_arguments "${_arguments_options[@]}" : \
&& ret=0
;;
(status)
_arguments "${_arguments_options[@]}" : \
&& ret=0
;;
(certs)
_arguments "${_arguments_options[@]}" : \
":: :_kubesup__subcmd__help__subcmd__certs_commands" \
"*::: :->certs" \
&& ret=0

    case $state in
    (certs)
        words=($line[1] "${words[@]}")
        (( CURRENT += 1 ))
        curcontext="${curcontext%:*:*}:kubesup-help-certs-command-$line[1]:"
        case $line[1] in
            (generate)
_arguments "${_arguments_options[@]}" : \
&& ret=0
;;
(check)
_arguments "${_arguments_options[@]}" : \
&& ret=0
;;
(rotate)
_arguments "${_arguments_options[@]}" : \
&& ret=0
;;
        esac
    ;;
esac
;;
(fetch)
_arguments "${_arguments_options[@]}" : \
&& ret=0
;;
(install)
_arguments "${_arguments_options[@]}" : \
":: :_kubesup__subcmd__help__subcmd__install_commands" \
"*::: :->install" \
&& ret=0

    case $state in
    (install)
        words=($line[1] "${words[@]}")
        (( CURRENT += 1 ))
        curcontext="${curcontext%:*:*}:kubesup-help-install-command-$line[1]:"
        case $line[1] in
            (master)
_arguments "${_arguments_options[@]}" : \
&& ret=0
;;
(worker)
_arguments "${_arguments_options[@]}" : \
&& ret=0
;;
        esac
    ;;
esac
;;
(uninstall)
_arguments "${_arguments_options[@]}" : \
&& ret=0
;;
(reset)
_arguments "${_arguments_options[@]}" : \
&& ret=0
;;
(config)
_arguments "${_arguments_options[@]}" : \
":: :_kubesup__subcmd__help__subcmd__config_commands" \
"*::: :->config" \
&& ret=0

    case $state in
    (config)
        words=($line[1] "${words[@]}")
        (( CURRENT += 1 ))
        curcontext="${curcontext%:*:*}:kubesup-help-config-command-$line[1]:"
        case $line[1] in
            (default)
_arguments "${_arguments_options[@]}" : \
&& ret=0
;;
(check)
_arguments "${_arguments_options[@]}" : \
&& ret=0
;;
        esac
    ;;
esac
;;
(completions)
_arguments "${_arguments_options[@]}" : \
&& ret=0
;;
(version)
_arguments "${_arguments_options[@]}" : \
&& ret=0
;;
(supervise)
_arguments "${_arguments_options[@]}" : \
&& ret=0
;;
(manpage)
_arguments "${_arguments_options[@]}" : \
&& ret=0
;;
(help)
_arguments "${_arguments_options[@]}" : \
&& ret=0
;;
        esac
    ;;
esac
;;
        esac
    ;;
esac
}

(( $+functions[_kubesup_commands] )) ||
_kubesup_commands() {
    local commands; commands=(
'master:Run a control-plane node\: etcd, kube-apiserver, controller-manager, scheduler (and containerd, kubelet, kube-proxy with --schedulable)' \
'worker:Join a cluster and run containerd, kubelet, kube-proxy and flannel' \
'token:Create, list and delete join tokens (on a master)' \
'etcd:List this cluster'\''s etcd members, or remove one whose machine is gone (on a master)' \
'backup:Back up this master\: etcd'\''s snapshot, the cluster'\''s CA and service-account keys and its settings, in one archive (0600); or list the scheduled backups' \
'restore:Restore a backup into an empty data dir, as a new one-member cluster with the same CAs; then \`kubesup master\` on that data dir brings the cluster back' \
'status:Show every supervised component\: state, pid, uptime, restarts, readiness, memory, CPU' \
'certs:Generate, check and rotate the cluster'\''s certificates' \
'fetch:Download and verify every binary a node role needs, or make/load an air-gap bundle' \
'install:Write the config file and service unit for a manual install, then enable it' \
'uninstall:Remove what \`kubesup install\` wrote (the unit and config; not the data dir)' \
'reset:Stop kubesup and remove everything it created on this node\: processes, mounts, interfaces, iptables chains, the data dir and the PKI' \
'config:Print the default config, or check a config file' \
'completions:Print shell completions' \
'version:Print kubesup'\''s version and the default Kubernetes version' \
'supervise:Supervise the processes listed in a YAML file with kubesup'\''s engine (restarts, backoff, process-group kills, status socket), without any Kubernetes component' \
'manpage:Write the man page (used to refresh contrib/kubesup.1)' \
'help:Print this message or the help of the given subcommand(s)' \
    )
    _describe -t commands 'kubesup commands' commands "$@"
}
(( $+functions[_kubesup__subcmd__backup_commands] )) ||
_kubesup__subcmd__backup_commands() {
    local commands; commands=(
'list:The backups in this master'\''s backup dir\: time, size, etcd revision' \
'help:Print this message or the help of the given subcommand(s)' \
    )
    _describe -t commands 'kubesup backup commands' commands "$@"
}
(( $+functions[_kubesup__subcmd__backup__subcmd__help_commands] )) ||
_kubesup__subcmd__backup__subcmd__help_commands() {
    local commands; commands=(
'list:The backups in this master'\''s backup dir\: time, size, etcd revision' \
'help:Print this message or the help of the given subcommand(s)' \
    )
    _describe -t commands 'kubesup backup help commands' commands "$@"
}
(( $+functions[_kubesup__subcmd__backup__subcmd__help__subcmd__help_commands] )) ||
_kubesup__subcmd__backup__subcmd__help__subcmd__help_commands() {
    local commands; commands=()
    _describe -t commands 'kubesup backup help help commands' commands "$@"
}
(( $+functions[_kubesup__subcmd__backup__subcmd__help__subcmd__list_commands] )) ||
_kubesup__subcmd__backup__subcmd__help__subcmd__list_commands() {
    local commands; commands=()
    _describe -t commands 'kubesup backup help list commands' commands "$@"
}
(( $+functions[_kubesup__subcmd__backup__subcmd__list_commands] )) ||
_kubesup__subcmd__backup__subcmd__list_commands() {
    local commands; commands=()
    _describe -t commands 'kubesup backup list commands' commands "$@"
}
(( $+functions[_kubesup__subcmd__certs_commands] )) ||
_kubesup__subcmd__certs_commands() {
    local commands; commands=(
'generate:Create every missing CA, certificate, key and kubeconfig; re-issue leaves whose names changed or that are due for renewal. Never replaces a CA' \
'check:Print a table of every certificate; exit 1 if any expired or expires within 30 days' \
'rotate:Re-issue leaf certificates (never CAs)' \
'help:Print this message or the help of the given subcommand(s)' \
    )
    _describe -t commands 'kubesup certs commands' commands "$@"
}
(( $+functions[_kubesup__subcmd__certs__subcmd__check_commands] )) ||
_kubesup__subcmd__certs__subcmd__check_commands() {
    local commands; commands=()
    _describe -t commands 'kubesup certs check commands' commands "$@"
}
(( $+functions[_kubesup__subcmd__certs__subcmd__generate_commands] )) ||
_kubesup__subcmd__certs__subcmd__generate_commands() {
    local commands; commands=()
    _describe -t commands 'kubesup certs generate commands' commands "$@"
}
(( $+functions[_kubesup__subcmd__certs__subcmd__help_commands] )) ||
_kubesup__subcmd__certs__subcmd__help_commands() {
    local commands; commands=(
'generate:Create every missing CA, certificate, key and kubeconfig; re-issue leaves whose names changed or that are due for renewal. Never replaces a CA' \
'check:Print a table of every certificate; exit 1 if any expired or expires within 30 days' \
'rotate:Re-issue leaf certificates (never CAs)' \
'help:Print this message or the help of the given subcommand(s)' \
    )
    _describe -t commands 'kubesup certs help commands' commands "$@"
}
(( $+functions[_kubesup__subcmd__certs__subcmd__help__subcmd__check_commands] )) ||
_kubesup__subcmd__certs__subcmd__help__subcmd__check_commands() {
    local commands; commands=()
    _describe -t commands 'kubesup certs help check commands' commands "$@"
}
(( $+functions[_kubesup__subcmd__certs__subcmd__help__subcmd__generate_commands] )) ||
_kubesup__subcmd__certs__subcmd__help__subcmd__generate_commands() {
    local commands; commands=()
    _describe -t commands 'kubesup certs help generate commands' commands "$@"
}
(( $+functions[_kubesup__subcmd__certs__subcmd__help__subcmd__help_commands] )) ||
_kubesup__subcmd__certs__subcmd__help__subcmd__help_commands() {
    local commands; commands=()
    _describe -t commands 'kubesup certs help help commands' commands "$@"
}
(( $+functions[_kubesup__subcmd__certs__subcmd__help__subcmd__rotate_commands] )) ||
_kubesup__subcmd__certs__subcmd__help__subcmd__rotate_commands() {
    local commands; commands=()
    _describe -t commands 'kubesup certs help rotate commands' commands "$@"
}
(( $+functions[_kubesup__subcmd__certs__subcmd__rotate_commands] )) ||
_kubesup__subcmd__certs__subcmd__rotate_commands() {
    local commands; commands=()
    _describe -t commands 'kubesup certs rotate commands' commands "$@"
}
(( $+functions[_kubesup__subcmd__completions_commands] )) ||
_kubesup__subcmd__completions_commands() {
    local commands; commands=()
    _describe -t commands 'kubesup completions commands' commands "$@"
}
(( $+functions[_kubesup__subcmd__config_commands] )) ||
_kubesup__subcmd__config_commands() {
    local commands; commands=(
'default:Print the default config file, with comments' \
'check:Validate a config file; print every problem, one per line, and exit 1 if any' \
'help:Print this message or the help of the given subcommand(s)' \
    )
    _describe -t commands 'kubesup config commands' commands "$@"
}
(( $+functions[_kubesup__subcmd__config__subcmd__check_commands] )) ||
_kubesup__subcmd__config__subcmd__check_commands() {
    local commands; commands=()
    _describe -t commands 'kubesup config check commands' commands "$@"
}
(( $+functions[_kubesup__subcmd__config__subcmd__default_commands] )) ||
_kubesup__subcmd__config__subcmd__default_commands() {
    local commands; commands=()
    _describe -t commands 'kubesup config default commands' commands "$@"
}
(( $+functions[_kubesup__subcmd__config__subcmd__help_commands] )) ||
_kubesup__subcmd__config__subcmd__help_commands() {
    local commands; commands=(
'default:Print the default config file, with comments' \
'check:Validate a config file; print every problem, one per line, and exit 1 if any' \
'help:Print this message or the help of the given subcommand(s)' \
    )
    _describe -t commands 'kubesup config help commands' commands "$@"
}
(( $+functions[_kubesup__subcmd__config__subcmd__help__subcmd__check_commands] )) ||
_kubesup__subcmd__config__subcmd__help__subcmd__check_commands() {
    local commands; commands=()
    _describe -t commands 'kubesup config help check commands' commands "$@"
}
(( $+functions[_kubesup__subcmd__config__subcmd__help__subcmd__default_commands] )) ||
_kubesup__subcmd__config__subcmd__help__subcmd__default_commands() {
    local commands; commands=()
    _describe -t commands 'kubesup config help default commands' commands "$@"
}
(( $+functions[_kubesup__subcmd__config__subcmd__help__subcmd__help_commands] )) ||
_kubesup__subcmd__config__subcmd__help__subcmd__help_commands() {
    local commands; commands=()
    _describe -t commands 'kubesup config help help commands' commands "$@"
}
(( $+functions[_kubesup__subcmd__etcd_commands] )) ||
_kubesup__subcmd__etcd_commands() {
    local commands; commands=(
'members:Table of the etcd members\: name, ID, peer and client URLs, voter or learner, leader, health and db size, each member asked on its own client URLs' \
'remove:Remove the member of a machine that is gone for good. Refused if the voters left would not have a healthy quorum, and for this machine'\''s own member (use \`kubesup reset\` there)' \
'help:Print this message or the help of the given subcommand(s)' \
    )
    _describe -t commands 'kubesup etcd commands' commands "$@"
}
(( $+functions[_kubesup__subcmd__etcd__subcmd__help_commands] )) ||
_kubesup__subcmd__etcd__subcmd__help_commands() {
    local commands; commands=(
'members:Table of the etcd members\: name, ID, peer and client URLs, voter or learner, leader, health and db size, each member asked on its own client URLs' \
'remove:Remove the member of a machine that is gone for good. Refused if the voters left would not have a healthy quorum, and for this machine'\''s own member (use \`kubesup reset\` there)' \
'help:Print this message or the help of the given subcommand(s)' \
    )
    _describe -t commands 'kubesup etcd help commands' commands "$@"
}
(( $+functions[_kubesup__subcmd__etcd__subcmd__help__subcmd__help_commands] )) ||
_kubesup__subcmd__etcd__subcmd__help__subcmd__help_commands() {
    local commands; commands=()
    _describe -t commands 'kubesup etcd help help commands' commands "$@"
}
(( $+functions[_kubesup__subcmd__etcd__subcmd__help__subcmd__members_commands] )) ||
_kubesup__subcmd__etcd__subcmd__help__subcmd__members_commands() {
    local commands; commands=()
    _describe -t commands 'kubesup etcd help members commands' commands "$@"
}
(( $+functions[_kubesup__subcmd__etcd__subcmd__help__subcmd__remove_commands] )) ||
_kubesup__subcmd__etcd__subcmd__help__subcmd__remove_commands() {
    local commands; commands=()
    _describe -t commands 'kubesup etcd help remove commands' commands "$@"
}
(( $+functions[_kubesup__subcmd__etcd__subcmd__members_commands] )) ||
_kubesup__subcmd__etcd__subcmd__members_commands() {
    local commands; commands=()
    _describe -t commands 'kubesup etcd members commands' commands "$@"
}
(( $+functions[_kubesup__subcmd__etcd__subcmd__remove_commands] )) ||
_kubesup__subcmd__etcd__subcmd__remove_commands() {
    local commands; commands=()
    _describe -t commands 'kubesup etcd remove commands' commands "$@"
}
(( $+functions[_kubesup__subcmd__fetch_commands] )) ||
_kubesup__subcmd__fetch_commands() {
    local commands; commands=()
    _describe -t commands 'kubesup fetch commands' commands "$@"
}
(( $+functions[_kubesup__subcmd__help_commands] )) ||
_kubesup__subcmd__help_commands() {
    local commands; commands=(
'master:Run a control-plane node\: etcd, kube-apiserver, controller-manager, scheduler (and containerd, kubelet, kube-proxy with --schedulable)' \
'worker:Join a cluster and run containerd, kubelet, kube-proxy and flannel' \
'token:Create, list and delete join tokens (on a master)' \
'etcd:List this cluster'\''s etcd members, or remove one whose machine is gone (on a master)' \
'backup:Back up this master\: etcd'\''s snapshot, the cluster'\''s CA and service-account keys and its settings, in one archive (0600); or list the scheduled backups' \
'restore:Restore a backup into an empty data dir, as a new one-member cluster with the same CAs; then \`kubesup master\` on that data dir brings the cluster back' \
'status:Show every supervised component\: state, pid, uptime, restarts, readiness, memory, CPU' \
'certs:Generate, check and rotate the cluster'\''s certificates' \
'fetch:Download and verify every binary a node role needs, or make/load an air-gap bundle' \
'install:Write the config file and service unit for a manual install, then enable it' \
'uninstall:Remove what \`kubesup install\` wrote (the unit and config; not the data dir)' \
'reset:Stop kubesup and remove everything it created on this node\: processes, mounts, interfaces, iptables chains, the data dir and the PKI' \
'config:Print the default config, or check a config file' \
'completions:Print shell completions' \
'version:Print kubesup'\''s version and the default Kubernetes version' \
'supervise:Supervise the processes listed in a YAML file with kubesup'\''s engine (restarts, backoff, process-group kills, status socket), without any Kubernetes component' \
'manpage:Write the man page (used to refresh contrib/kubesup.1)' \
'help:Print this message or the help of the given subcommand(s)' \
    )
    _describe -t commands 'kubesup help commands' commands "$@"
}
(( $+functions[_kubesup__subcmd__help__subcmd__backup_commands] )) ||
_kubesup__subcmd__help__subcmd__backup_commands() {
    local commands; commands=(
'list:The backups in this master'\''s backup dir\: time, size, etcd revision' \
    )
    _describe -t commands 'kubesup help backup commands' commands "$@"
}
(( $+functions[_kubesup__subcmd__help__subcmd__backup__subcmd__list_commands] )) ||
_kubesup__subcmd__help__subcmd__backup__subcmd__list_commands() {
    local commands; commands=()
    _describe -t commands 'kubesup help backup list commands' commands "$@"
}
(( $+functions[_kubesup__subcmd__help__subcmd__certs_commands] )) ||
_kubesup__subcmd__help__subcmd__certs_commands() {
    local commands; commands=(
'generate:Create every missing CA, certificate, key and kubeconfig; re-issue leaves whose names changed or that are due for renewal. Never replaces a CA' \
'check:Print a table of every certificate; exit 1 if any expired or expires within 30 days' \
'rotate:Re-issue leaf certificates (never CAs)' \
    )
    _describe -t commands 'kubesup help certs commands' commands "$@"
}
(( $+functions[_kubesup__subcmd__help__subcmd__certs__subcmd__check_commands] )) ||
_kubesup__subcmd__help__subcmd__certs__subcmd__check_commands() {
    local commands; commands=()
    _describe -t commands 'kubesup help certs check commands' commands "$@"
}
(( $+functions[_kubesup__subcmd__help__subcmd__certs__subcmd__generate_commands] )) ||
_kubesup__subcmd__help__subcmd__certs__subcmd__generate_commands() {
    local commands; commands=()
    _describe -t commands 'kubesup help certs generate commands' commands "$@"
}
(( $+functions[_kubesup__subcmd__help__subcmd__certs__subcmd__rotate_commands] )) ||
_kubesup__subcmd__help__subcmd__certs__subcmd__rotate_commands() {
    local commands; commands=()
    _describe -t commands 'kubesup help certs rotate commands' commands "$@"
}
(( $+functions[_kubesup__subcmd__help__subcmd__completions_commands] )) ||
_kubesup__subcmd__help__subcmd__completions_commands() {
    local commands; commands=()
    _describe -t commands 'kubesup help completions commands' commands "$@"
}
(( $+functions[_kubesup__subcmd__help__subcmd__config_commands] )) ||
_kubesup__subcmd__help__subcmd__config_commands() {
    local commands; commands=(
'default:Print the default config file, with comments' \
'check:Validate a config file; print every problem, one per line, and exit 1 if any' \
    )
    _describe -t commands 'kubesup help config commands' commands "$@"
}
(( $+functions[_kubesup__subcmd__help__subcmd__config__subcmd__check_commands] )) ||
_kubesup__subcmd__help__subcmd__config__subcmd__check_commands() {
    local commands; commands=()
    _describe -t commands 'kubesup help config check commands' commands "$@"
}
(( $+functions[_kubesup__subcmd__help__subcmd__config__subcmd__default_commands] )) ||
_kubesup__subcmd__help__subcmd__config__subcmd__default_commands() {
    local commands; commands=()
    _describe -t commands 'kubesup help config default commands' commands "$@"
}
(( $+functions[_kubesup__subcmd__help__subcmd__etcd_commands] )) ||
_kubesup__subcmd__help__subcmd__etcd_commands() {
    local commands; commands=(
'members:Table of the etcd members\: name, ID, peer and client URLs, voter or learner, leader, health and db size, each member asked on its own client URLs' \
'remove:Remove the member of a machine that is gone for good. Refused if the voters left would not have a healthy quorum, and for this machine'\''s own member (use \`kubesup reset\` there)' \
    )
    _describe -t commands 'kubesup help etcd commands' commands "$@"
}
(( $+functions[_kubesup__subcmd__help__subcmd__etcd__subcmd__members_commands] )) ||
_kubesup__subcmd__help__subcmd__etcd__subcmd__members_commands() {
    local commands; commands=()
    _describe -t commands 'kubesup help etcd members commands' commands "$@"
}
(( $+functions[_kubesup__subcmd__help__subcmd__etcd__subcmd__remove_commands] )) ||
_kubesup__subcmd__help__subcmd__etcd__subcmd__remove_commands() {
    local commands; commands=()
    _describe -t commands 'kubesup help etcd remove commands' commands "$@"
}
(( $+functions[_kubesup__subcmd__help__subcmd__fetch_commands] )) ||
_kubesup__subcmd__help__subcmd__fetch_commands() {
    local commands; commands=()
    _describe -t commands 'kubesup help fetch commands' commands "$@"
}
(( $+functions[_kubesup__subcmd__help__subcmd__help_commands] )) ||
_kubesup__subcmd__help__subcmd__help_commands() {
    local commands; commands=()
    _describe -t commands 'kubesup help help commands' commands "$@"
}
(( $+functions[_kubesup__subcmd__help__subcmd__install_commands] )) ||
_kubesup__subcmd__help__subcmd__install_commands() {
    local commands; commands=(
'master:Install the master service\: /etc/kubesup/config.yaml from these flags, the systemd unit, then enable and start it (or say what to run without systemd)' \
'worker:Install the worker service, with its join URL and token (kept in /etc/kubesup/token, 0600)' \
    )
    _describe -t commands 'kubesup help install commands' commands "$@"
}
(( $+functions[_kubesup__subcmd__help__subcmd__install__subcmd__master_commands] )) ||
_kubesup__subcmd__help__subcmd__install__subcmd__master_commands() {
    local commands; commands=()
    _describe -t commands 'kubesup help install master commands' commands "$@"
}
(( $+functions[_kubesup__subcmd__help__subcmd__install__subcmd__worker_commands] )) ||
_kubesup__subcmd__help__subcmd__install__subcmd__worker_commands() {
    local commands; commands=()
    _describe -t commands 'kubesup help install worker commands' commands "$@"
}
(( $+functions[_kubesup__subcmd__help__subcmd__manpage_commands] )) ||
_kubesup__subcmd__help__subcmd__manpage_commands() {
    local commands; commands=()
    _describe -t commands 'kubesup help manpage commands' commands "$@"
}
(( $+functions[_kubesup__subcmd__help__subcmd__master_commands] )) ||
_kubesup__subcmd__help__subcmd__master_commands() {
    local commands; commands=()
    _describe -t commands 'kubesup help master commands' commands "$@"
}
(( $+functions[_kubesup__subcmd__help__subcmd__reset_commands] )) ||
_kubesup__subcmd__help__subcmd__reset_commands() {
    local commands; commands=()
    _describe -t commands 'kubesup help reset commands' commands "$@"
}
(( $+functions[_kubesup__subcmd__help__subcmd__restore_commands] )) ||
_kubesup__subcmd__help__subcmd__restore_commands() {
    local commands; commands=()
    _describe -t commands 'kubesup help restore commands' commands "$@"
}
(( $+functions[_kubesup__subcmd__help__subcmd__status_commands] )) ||
_kubesup__subcmd__help__subcmd__status_commands() {
    local commands; commands=()
    _describe -t commands 'kubesup help status commands' commands "$@"
}
(( $+functions[_kubesup__subcmd__help__subcmd__supervise_commands] )) ||
_kubesup__subcmd__help__subcmd__supervise_commands() {
    local commands; commands=()
    _describe -t commands 'kubesup help supervise commands' commands "$@"
}
(( $+functions[_kubesup__subcmd__help__subcmd__token_commands] )) ||
_kubesup__subcmd__help__subcmd__token_commands() {
    local commands; commands=(
'create:Create a join token and print it (only ever shown once)' \
'list:List tokens (id, expiry, description; never the secret)' \
'delete:Delete a token by id' \
    )
    _describe -t commands 'kubesup help token commands' commands "$@"
}
(( $+functions[_kubesup__subcmd__help__subcmd__token__subcmd__create_commands] )) ||
_kubesup__subcmd__help__subcmd__token__subcmd__create_commands() {
    local commands; commands=()
    _describe -t commands 'kubesup help token create commands' commands "$@"
}
(( $+functions[_kubesup__subcmd__help__subcmd__token__subcmd__delete_commands] )) ||
_kubesup__subcmd__help__subcmd__token__subcmd__delete_commands() {
    local commands; commands=()
    _describe -t commands 'kubesup help token delete commands' commands "$@"
}
(( $+functions[_kubesup__subcmd__help__subcmd__token__subcmd__list_commands] )) ||
_kubesup__subcmd__help__subcmd__token__subcmd__list_commands() {
    local commands; commands=()
    _describe -t commands 'kubesup help token list commands' commands "$@"
}
(( $+functions[_kubesup__subcmd__help__subcmd__uninstall_commands] )) ||
_kubesup__subcmd__help__subcmd__uninstall_commands() {
    local commands; commands=()
    _describe -t commands 'kubesup help uninstall commands' commands "$@"
}
(( $+functions[_kubesup__subcmd__help__subcmd__version_commands] )) ||
_kubesup__subcmd__help__subcmd__version_commands() {
    local commands; commands=()
    _describe -t commands 'kubesup help version commands' commands "$@"
}
(( $+functions[_kubesup__subcmd__help__subcmd__worker_commands] )) ||
_kubesup__subcmd__help__subcmd__worker_commands() {
    local commands; commands=()
    _describe -t commands 'kubesup help worker commands' commands "$@"
}
(( $+functions[_kubesup__subcmd__install_commands] )) ||
_kubesup__subcmd__install_commands() {
    local commands; commands=(
'master:Install the master service\: /etc/kubesup/config.yaml from these flags, the systemd unit, then enable and start it (or say what to run without systemd)' \
'worker:Install the worker service, with its join URL and token (kept in /etc/kubesup/token, 0600)' \
'help:Print this message or the help of the given subcommand(s)' \
    )
    _describe -t commands 'kubesup install commands' commands "$@"
}
(( $+functions[_kubesup__subcmd__install__subcmd__help_commands] )) ||
_kubesup__subcmd__install__subcmd__help_commands() {
    local commands; commands=(
'master:Install the master service\: /etc/kubesup/config.yaml from these flags, the systemd unit, then enable and start it (or say what to run without systemd)' \
'worker:Install the worker service, with its join URL and token (kept in /etc/kubesup/token, 0600)' \
'help:Print this message or the help of the given subcommand(s)' \
    )
    _describe -t commands 'kubesup install help commands' commands "$@"
}
(( $+functions[_kubesup__subcmd__install__subcmd__help__subcmd__help_commands] )) ||
_kubesup__subcmd__install__subcmd__help__subcmd__help_commands() {
    local commands; commands=()
    _describe -t commands 'kubesup install help help commands' commands "$@"
}
(( $+functions[_kubesup__subcmd__install__subcmd__help__subcmd__master_commands] )) ||
_kubesup__subcmd__install__subcmd__help__subcmd__master_commands() {
    local commands; commands=()
    _describe -t commands 'kubesup install help master commands' commands "$@"
}
(( $+functions[_kubesup__subcmd__install__subcmd__help__subcmd__worker_commands] )) ||
_kubesup__subcmd__install__subcmd__help__subcmd__worker_commands() {
    local commands; commands=()
    _describe -t commands 'kubesup install help worker commands' commands "$@"
}
(( $+functions[_kubesup__subcmd__install__subcmd__master_commands] )) ||
_kubesup__subcmd__install__subcmd__master_commands() {
    local commands; commands=()
    _describe -t commands 'kubesup install master commands' commands "$@"
}
(( $+functions[_kubesup__subcmd__install__subcmd__worker_commands] )) ||
_kubesup__subcmd__install__subcmd__worker_commands() {
    local commands; commands=()
    _describe -t commands 'kubesup install worker commands' commands "$@"
}
(( $+functions[_kubesup__subcmd__manpage_commands] )) ||
_kubesup__subcmd__manpage_commands() {
    local commands; commands=()
    _describe -t commands 'kubesup manpage commands' commands "$@"
}
(( $+functions[_kubesup__subcmd__master_commands] )) ||
_kubesup__subcmd__master_commands() {
    local commands; commands=()
    _describe -t commands 'kubesup master commands' commands "$@"
}
(( $+functions[_kubesup__subcmd__reset_commands] )) ||
_kubesup__subcmd__reset_commands() {
    local commands; commands=()
    _describe -t commands 'kubesup reset commands' commands "$@"
}
(( $+functions[_kubesup__subcmd__restore_commands] )) ||
_kubesup__subcmd__restore_commands() {
    local commands; commands=()
    _describe -t commands 'kubesup restore commands' commands "$@"
}
(( $+functions[_kubesup__subcmd__status_commands] )) ||
_kubesup__subcmd__status_commands() {
    local commands; commands=()
    _describe -t commands 'kubesup status commands' commands "$@"
}
(( $+functions[_kubesup__subcmd__supervise_commands] )) ||
_kubesup__subcmd__supervise_commands() {
    local commands; commands=()
    _describe -t commands 'kubesup supervise commands' commands "$@"
}
(( $+functions[_kubesup__subcmd__token_commands] )) ||
_kubesup__subcmd__token_commands() {
    local commands; commands=(
'create:Create a join token and print it (only ever shown once)' \
'list:List tokens (id, expiry, description; never the secret)' \
'delete:Delete a token by id' \
'help:Print this message or the help of the given subcommand(s)' \
    )
    _describe -t commands 'kubesup token commands' commands "$@"
}
(( $+functions[_kubesup__subcmd__token__subcmd__create_commands] )) ||
_kubesup__subcmd__token__subcmd__create_commands() {
    local commands; commands=()
    _describe -t commands 'kubesup token create commands' commands "$@"
}
(( $+functions[_kubesup__subcmd__token__subcmd__delete_commands] )) ||
_kubesup__subcmd__token__subcmd__delete_commands() {
    local commands; commands=()
    _describe -t commands 'kubesup token delete commands' commands "$@"
}
(( $+functions[_kubesup__subcmd__token__subcmd__help_commands] )) ||
_kubesup__subcmd__token__subcmd__help_commands() {
    local commands; commands=(
'create:Create a join token and print it (only ever shown once)' \
'list:List tokens (id, expiry, description; never the secret)' \
'delete:Delete a token by id' \
'help:Print this message or the help of the given subcommand(s)' \
    )
    _describe -t commands 'kubesup token help commands' commands "$@"
}
(( $+functions[_kubesup__subcmd__token__subcmd__help__subcmd__create_commands] )) ||
_kubesup__subcmd__token__subcmd__help__subcmd__create_commands() {
    local commands; commands=()
    _describe -t commands 'kubesup token help create commands' commands "$@"
}
(( $+functions[_kubesup__subcmd__token__subcmd__help__subcmd__delete_commands] )) ||
_kubesup__subcmd__token__subcmd__help__subcmd__delete_commands() {
    local commands; commands=()
    _describe -t commands 'kubesup token help delete commands' commands "$@"
}
(( $+functions[_kubesup__subcmd__token__subcmd__help__subcmd__help_commands] )) ||
_kubesup__subcmd__token__subcmd__help__subcmd__help_commands() {
    local commands; commands=()
    _describe -t commands 'kubesup token help help commands' commands "$@"
}
(( $+functions[_kubesup__subcmd__token__subcmd__help__subcmd__list_commands] )) ||
_kubesup__subcmd__token__subcmd__help__subcmd__list_commands() {
    local commands; commands=()
    _describe -t commands 'kubesup token help list commands' commands "$@"
}
(( $+functions[_kubesup__subcmd__token__subcmd__list_commands] )) ||
_kubesup__subcmd__token__subcmd__list_commands() {
    local commands; commands=()
    _describe -t commands 'kubesup token list commands' commands "$@"
}
(( $+functions[_kubesup__subcmd__uninstall_commands] )) ||
_kubesup__subcmd__uninstall_commands() {
    local commands; commands=()
    _describe -t commands 'kubesup uninstall commands' commands "$@"
}
(( $+functions[_kubesup__subcmd__version_commands] )) ||
_kubesup__subcmd__version_commands() {
    local commands; commands=()
    _describe -t commands 'kubesup version commands' commands "$@"
}
(( $+functions[_kubesup__subcmd__worker_commands] )) ||
_kubesup__subcmd__worker_commands() {
    local commands; commands=()
    _describe -t commands 'kubesup worker commands' commands "$@"
}

if [ "$funcstack[1]" = "_kubesup" ]; then
    _kubesup "$@"
else
    compdef _kubesup kubesup
fi
