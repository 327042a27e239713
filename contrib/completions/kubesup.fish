# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.
function __fish_kubesup_global_optspecs
    string join \n log-format= log= h/help V/version
end

function __fish_kubesup_needs_command
    # Figure out if the current invocation already has a command.
    set -l cmd (commandline -opc)
    set -e cmd[1]
    argparse -s (__fish_kubesup_global_optspecs) -- $cmd 2>/dev/null
    or return
    if set -q argv[1]
        # Also print the command, so this can be used to figure out what it is.
        echo $argv[1]
        return 1
    end
    return 0
end

function __fish_kubesup_using_subcommand
    set -l cmd (__fish_kubesup_needs_command)
    test -z "$cmd"
    and return 1
    contains -- $cmd[1] $argv
end

complete -c kubesup -n "__fish_kubesup_needs_command" -l log-format -d 'Log format of kubesup\'s own output and of forwarded component output' -r
complete -c kubesup -n "__fish_kubesup_needs_command" -l log -d 'Log filter (tracing-subscriber syntax), e.g. `info` or `kubesup=debug`' -r
complete -c kubesup -n "__fish_kubesup_needs_command" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c kubesup -n "__fish_kubesup_needs_command" -s V -l version -d 'Print version'
complete -c kubesup -n "__fish_kubesup_needs_command" -f -a "master" -d 'Run a control-plane node: etcd, kube-apiserver, controller-manager, scheduler (and containerd, kubelet, kube-proxy with --schedulable)'
complete -c kubesup -n "__fish_kubesup_needs_command" -f -a "worker" -d 'Join a cluster and run containerd, kubelet, kube-proxy and flannel'
complete -c kubesup -n "__fish_kubesup_needs_command" -f -a "token" -d 'Create, list and delete join tokens (on a master)'
complete -c kubesup -n "__fish_kubesup_needs_command" -f -a "etcd" -d 'List this cluster\'s etcd members, or remove one whose machine is gone (on a master)'
complete -c kubesup -n "__fish_kubesup_needs_command" -f -a "backup" -d 'Back up this master: etcd\'s snapshot, the cluster\'s CA and service-account keys and its settings, in one archive (0600); or list the scheduled backups'
complete -c kubesup -n "__fish_kubesup_needs_command" -f -a "restore" -d 'Restore a backup into an empty data dir, as a new one-member cluster with the same CAs; then `kubesup master` on that data dir brings the cluster back'
complete -c kubesup -n "__fish_kubesup_needs_command" -f -a "status" -d 'Show every supervised component: state, pid, uptime, restarts, readiness, memory, CPU'
complete -c kubesup -n "__fish_kubesup_needs_command" -f -a "certs" -d 'Generate, check and rotate the cluster\'s certificates'
complete -c kubesup -n "__fish_kubesup_needs_command" -f -a "fetch" -d 'Download and verify every binary a node role needs, or make/load an air-gap bundle'
complete -c kubesup -n "__fish_kubesup_needs_command" -f -a "install" -d 'Write the config file and service unit for a manual install, then enable it'
complete -c kubesup -n "__fish_kubesup_needs_command" -f -a "uninstall" -d 'Remove what `kubesup install` wrote (the unit and config; not the data dir)'
complete -c kubesup -n "__fish_kubesup_needs_command" -f -a "reset" -d 'Stop kubesup and remove everything it created on this node: processes, mounts, interfaces, iptables chains, the data dir and the PKI'
complete -c kubesup -n "__fish_kubesup_needs_command" -f -a "config" -d 'Print the default config, or check a config file'
complete -c kubesup -n "__fish_kubesup_needs_command" -f -a "completions" -d 'Print shell completions'
complete -c kubesup -n "__fish_kubesup_needs_command" -f -a "version" -d 'Print kubesup\'s version and the default Kubernetes version'
complete -c kubesup -n "__fish_kubesup_needs_command" -f -a "supervise" -d 'Supervise the processes listed in a YAML file with kubesup\'s engine (restarts, backoff, process-group kills, status socket), without any Kubernetes component'
complete -c kubesup -n "__fish_kubesup_needs_command" -f -a "manpage" -d 'Write the man page (used to refresh contrib/kubesup.1)'
complete -c kubesup -n "__fish_kubesup_needs_command" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c kubesup -n "__fish_kubesup_using_subcommand master" -l config -d 'Config file (YAML); overridden by KUBESUP_* variables, then flags [default: /etc/kubesup/config.yaml if it exists]' -r -F
complete -c kubesup -n "__fish_kubesup_using_subcommand master" -l data-dir -d 'Where kubesup keeps binaries, PKI, etcd data, logs and state [default: /var/lib/kubesup]' -r -F
complete -c kubesup -n "__fish_kubesup_using_subcommand master" -l advertise -d 'The address other nodes reach this node on' -r
complete -c kubesup -n "__fish_kubesup_using_subcommand master" -l node-name -d 'Node name [default: the hostname, lowercased]' -r
complete -c kubesup -n "__fish_kubesup_using_subcommand master" -l kube-version -d 'Kubernetes version to fetch and run [default: v1.37.1]' -r
complete -c kubesup -n "__fish_kubesup_using_subcommand master" -l mirror -d 'Release mirror: https://, http://, file:// or a directory, in the upstream path layout' -r
complete -c kubesup -n "__fish_kubesup_using_subcommand master" -l pod-cidr -d 'Pod network [default: 10.2.0.0/16]' -r
complete -c kubesup -n "__fish_kubesup_using_subcommand master" -l service-cidr -d 'Service network; its first address is the API service IP [default: 10.3.0.0/24]' -r
complete -c kubesup -n "__fish_kubesup_using_subcommand master" -l cluster-dns -d 'Cluster DNS service IP, inside the service network [default: 10.3.0.10]' -r
complete -c kubesup -n "__fish_kubesup_using_subcommand master" -l cluster-domain -d 'Cluster DNS domain [default: cluster.local]' -r
complete -c kubesup -n "__fish_kubesup_using_subcommand master" -l api-port -d 'kube-apiserver secure port [default: 6443]' -r
complete -c kubesup -n "__fish_kubesup_using_subcommand master" -l join-port -d 'Join API port [default: 9443]' -r
complete -c kubesup -n "__fish_kubesup_using_subcommand master" -l schedulable -d 'Also run containerd, kubelet and kube-proxy on a master, so it takes pods' -r -f -a "true\t''
false\t''"
complete -c kubesup -n "__fish_kubesup_using_subcommand master" -l network -d 'Pod network backend [default: flannel]' -r
complete -c kubesup -n "__fish_kubesup_using_subcommand master" -l flannel-backend -d 'flannel\'s backend (config key flannel.backend), the same on every node of a cluster: vxlan encapsulates pod traffic and works across any network; host-gw routes it plainly and needs every node on one L2 segment [default: vxlan]' -r
complete -c kubesup -n "__fish_kubesup_using_subcommand master" -l key-type -d 'Certificate key type [default: ecdsa-p256]' -r
complete -c kubesup -n "__fish_kubesup_using_subcommand master" -l extra-sans -d 'Extra subject alternative names for the API server certificate (repeatable)' -r
complete -c kubesup -n "__fish_kubesup_using_subcommand master" -l etcd-version -d 'etcd version to fetch, overriding the release manifest\'s choice' -r
complete -c kubesup -n "__fish_kubesup_using_subcommand master" -l ignore-preflight -d 'Skip a preflight check by name (repeatable; `all` skips every check)' -r
complete -c kubesup -n "__fish_kubesup_using_subcommand master" -l join -d 'Join the control plane of an existing cluster through the join API of any of its masters, e.g. https://10.0.0.1:9443, with a token from `kubesup token create --role master`. Only read while this data dir holds no etcd data: once it does, this master is a member, and running it again resumes or restarts that member' -r
complete -c kubesup -n "__fish_kubesup_using_subcommand master" -l token -d 'Control-plane join token (prefer --token-file or KUBESUP_TOKEN: flags are visible in the process list)' -r
complete -c kubesup -n "__fish_kubesup_using_subcommand master" -l token-file -d 'File holding the control-plane join token' -r -F
complete -c kubesup -n "__fish_kubesup_using_subcommand master" -l log-format -d 'Log format of kubesup\'s own output and of forwarded component output' -r
complete -c kubesup -n "__fish_kubesup_using_subcommand master" -l log -d 'Log filter (tracing-subscriber syntax), e.g. `info` or `kubesup=debug`' -r
complete -c kubesup -n "__fish_kubesup_using_subcommand master" -l insecure-skip-verify -d 'Run binaries whose checksum could not be verified. Dangerous; logged loudly'
complete -c kubesup -n "__fish_kubesup_using_subcommand master" -l force -d 'Let a node name that already joined rejoin with a new key (after `kubectl delete node` and `kubesup reset` on a reinstalled machine)'
complete -c kubesup -n "__fish_kubesup_using_subcommand master" -l cluster-reset -d 'Lost quorum: start this master\'s etcd once as a one-member cluster from its own data (etcd\'s --force-new-cluster). Recorded in the data dir, so a later start with the flag still given does not reset again. The other masters then `kubesup reset` and join again'
complete -c kubesup -n "__fish_kubesup_using_subcommand master" -s h -l help -d 'Print help'
complete -c kubesup -n "__fish_kubesup_using_subcommand master" -s V -l version -d 'Print version'
complete -c kubesup -n "__fish_kubesup_using_subcommand worker" -l config -d 'Config file (YAML); overridden by KUBESUP_* variables, then flags [default: /etc/kubesup/config.yaml if it exists]' -r -F
complete -c kubesup -n "__fish_kubesup_using_subcommand worker" -l data-dir -d 'Where kubesup keeps binaries, PKI, etcd data, logs and state [default: /var/lib/kubesup]' -r -F
complete -c kubesup -n "__fish_kubesup_using_subcommand worker" -l advertise -d 'The address other nodes reach this node on' -r
complete -c kubesup -n "__fish_kubesup_using_subcommand worker" -l node-name -d 'Node name [default: the hostname, lowercased]' -r
complete -c kubesup -n "__fish_kubesup_using_subcommand worker" -l kube-version -d 'Kubernetes version to fetch and run [default: v1.37.1]' -r
complete -c kubesup -n "__fish_kubesup_using_subcommand worker" -l mirror -d 'Release mirror: https://, http://, file:// or a directory, in the upstream path layout' -r
complete -c kubesup -n "__fish_kubesup_using_subcommand worker" -l pod-cidr -d 'Pod network [default: 10.2.0.0/16]' -r
complete -c kubesup -n "__fish_kubesup_using_subcommand worker" -l service-cidr -d 'Service network; its first address is the API service IP [default: 10.3.0.0/24]' -r
complete -c kubesup -n "__fish_kubesup_using_subcommand worker" -l cluster-dns -d 'Cluster DNS service IP, inside the service network [default: 10.3.0.10]' -r
complete -c kubesup -n "__fish_kubesup_using_subcommand worker" -l cluster-domain -d 'Cluster DNS domain [default: cluster.local]' -r
complete -c kubesup -n "__fish_kubesup_using_subcommand worker" -l api-port -d 'kube-apiserver secure port [default: 6443]' -r
complete -c kubesup -n "__fish_kubesup_using_subcommand worker" -l join-port -d 'Join API port [default: 9443]' -r
complete -c kubesup -n "__fish_kubesup_using_subcommand worker" -l schedulable -d 'Also run containerd, kubelet and kube-proxy on a master, so it takes pods' -r -f -a "true\t''
false\t''"
complete -c kubesup -n "__fish_kubesup_using_subcommand worker" -l network -d 'Pod network backend [default: flannel]' -r
complete -c kubesup -n "__fish_kubesup_using_subcommand worker" -l flannel-backend -d 'flannel\'s backend (config key flannel.backend), the same on every node of a cluster: vxlan encapsulates pod traffic and works across any network; host-gw routes it plainly and needs every node on one L2 segment [default: vxlan]' -r
complete -c kubesup -n "__fish_kubesup_using_subcommand worker" -l key-type -d 'Certificate key type [default: ecdsa-p256]' -r
complete -c kubesup -n "__fish_kubesup_using_subcommand worker" -l extra-sans -d 'Extra subject alternative names for the API server certificate (repeatable)' -r
complete -c kubesup -n "__fish_kubesup_using_subcommand worker" -l etcd-version -d 'etcd version to fetch, overriding the release manifest\'s choice' -r
complete -c kubesup -n "__fish_kubesup_using_subcommand worker" -l join -d 'Join API of a master, e.g. https://10.0.0.1:9443' -r
complete -c kubesup -n "__fish_kubesup_using_subcommand worker" -l token -d 'Join token from `kubesup token create` (prefer --token-file or KUBESUP_TOKEN: flags are visible in the process list)' -r
complete -c kubesup -n "__fish_kubesup_using_subcommand worker" -l token-file -d 'File holding the join token' -r -F
complete -c kubesup -n "__fish_kubesup_using_subcommand worker" -l ignore-preflight -r
complete -c kubesup -n "__fish_kubesup_using_subcommand worker" -l log-format -d 'Log format of kubesup\'s own output and of forwarded component output' -r
complete -c kubesup -n "__fish_kubesup_using_subcommand worker" -l log -d 'Log filter (tracing-subscriber syntax), e.g. `info` or `kubesup=debug`' -r
complete -c kubesup -n "__fish_kubesup_using_subcommand worker" -l insecure-skip-verify -d 'Run binaries whose checksum could not be verified. Dangerous; logged loudly'
complete -c kubesup -n "__fish_kubesup_using_subcommand worker" -s h -l help -d 'Print help'
complete -c kubesup -n "__fish_kubesup_using_subcommand worker" -s V -l version -d 'Print version'
complete -c kubesup -n "__fish_kubesup_using_subcommand token; and not __fish_seen_subcommand_from create list delete help" -l log-format -d 'Log format of kubesup\'s own output and of forwarded component output' -r
complete -c kubesup -n "__fish_kubesup_using_subcommand token; and not __fish_seen_subcommand_from create list delete help" -l log -d 'Log filter (tracing-subscriber syntax), e.g. `info` or `kubesup=debug`' -r
complete -c kubesup -n "__fish_kubesup_using_subcommand token; and not __fish_seen_subcommand_from create list delete help" -s h -l help -d 'Print help'
complete -c kubesup -n "__fish_kubesup_using_subcommand token; and not __fish_seen_subcommand_from create list delete help" -s V -l version -d 'Print version'
complete -c kubesup -n "__fish_kubesup_using_subcommand token; and not __fish_seen_subcommand_from create list delete help" -f -a "create" -d 'Create a join token and print it (only ever shown once)'
complete -c kubesup -n "__fish_kubesup_using_subcommand token; and not __fish_seen_subcommand_from create list delete help" -f -a "list" -d 'List tokens (id, expiry, description; never the secret)'
complete -c kubesup -n "__fish_kubesup_using_subcommand token; and not __fish_seen_subcommand_from create list delete help" -f -a "delete" -d 'Delete a token by id'
complete -c kubesup -n "__fish_kubesup_using_subcommand token; and not __fish_seen_subcommand_from create list delete help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c kubesup -n "__fish_kubesup_using_subcommand token; and __fish_seen_subcommand_from create" -l config -r -F
complete -c kubesup -n "__fish_kubesup_using_subcommand token; and __fish_seen_subcommand_from create" -l data-dir -r -F
complete -c kubesup -n "__fish_kubesup_using_subcommand token; and __fish_seen_subcommand_from create" -l role -d 'What the token joins: `worker` nodes, or `master`s of the control plane (a master token is handed the cluster\'s CA keys; create one only on a master, and only when you are about to use it)' -r -f -a "master\t''
worker\t''"
complete -c kubesup -n "__fish_kubesup_using_subcommand token; and __fish_seen_subcommand_from create" -l ttl -d 'Lifetime; `0` means never expires and must be asked for explicitly. Default: 24h for a worker token, 1h for a master token' -r
complete -c kubesup -n "__fish_kubesup_using_subcommand token; and __fish_seen_subcommand_from create" -l description -r
complete -c kubesup -n "__fish_kubesup_using_subcommand token; and __fish_seen_subcommand_from create" -l log-format -d 'Log format of kubesup\'s own output and of forwarded component output' -r
complete -c kubesup -n "__fish_kubesup_using_subcommand token; and __fish_seen_subcommand_from create" -l log -d 'Log filter (tracing-subscriber syntax), e.g. `info` or `kubesup=debug`' -r
complete -c kubesup -n "__fish_kubesup_using_subcommand token; and __fish_seen_subcommand_from create" -s h -l help -d 'Print help'
complete -c kubesup -n "__fish_kubesup_using_subcommand token; and __fish_seen_subcommand_from create" -s V -l version -d 'Print version'
complete -c kubesup -n "__fish_kubesup_using_subcommand token; and __fish_seen_subcommand_from list" -l config -r -F
complete -c kubesup -n "__fish_kubesup_using_subcommand token; and __fish_seen_subcommand_from list" -l data-dir -r -F
complete -c kubesup -n "__fish_kubesup_using_subcommand token; and __fish_seen_subcommand_from list" -l log-format -d 'Log format of kubesup\'s own output and of forwarded component output' -r
complete -c kubesup -n "__fish_kubesup_using_subcommand token; and __fish_seen_subcommand_from list" -l log -d 'Log filter (tracing-subscriber syntax), e.g. `info` or `kubesup=debug`' -r
complete -c kubesup -n "__fish_kubesup_using_subcommand token; and __fish_seen_subcommand_from list" -s h -l help -d 'Print help'
complete -c kubesup -n "__fish_kubesup_using_subcommand token; and __fish_seen_subcommand_from list" -s V -l version -d 'Print version'
complete -c kubesup -n "__fish_kubesup_using_subcommand token; and __fish_seen_subcommand_from delete" -l config -r -F
complete -c kubesup -n "__fish_kubesup_using_subcommand token; and __fish_seen_subcommand_from delete" -l data-dir -r -F
complete -c kubesup -n "__fish_kubesup_using_subcommand token; and __fish_seen_subcommand_from delete" -l log-format -d 'Log format of kubesup\'s own output and of forwarded component output' -r
complete -c kubesup -n "__fish_kubesup_using_subcommand token; and __fish_seen_subcommand_from delete" -l log -d 'Log filter (tracing-subscriber syntax), e.g. `info` or `kubesup=debug`' -r
complete -c kubesup -n "__fish_kubesup_using_subcommand token; and __fish_seen_subcommand_from delete" -s h -l help -d 'Print help'
complete -c kubesup -n "__fish_kubesup_using_subcommand token; and __fish_seen_subcommand_from delete" -s V -l version -d 'Print version'
complete -c kubesup -n "__fish_kubesup_using_subcommand token; and __fish_seen_subcommand_from help" -f -a "create" -d 'Create a join token and print it (only ever shown once)'
complete -c kubesup -n "__fish_kubesup_using_subcommand token; and __fish_seen_subcommand_from help" -f -a "list" -d 'List tokens (id, expiry, description; never the secret)'
complete -c kubesup -n "__fish_kubesup_using_subcommand token; and __fish_seen_subcommand_from help" -f -a "delete" -d 'Delete a token by id'
complete -c kubesup -n "__fish_kubesup_using_subcommand token; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c kubesup -n "__fish_kubesup_using_subcommand etcd; and not __fish_seen_subcommand_from members remove help" -l log-format -d 'Log format of kubesup\'s own output and of forwarded component output' -r
complete -c kubesup -n "__fish_kubesup_using_subcommand etcd; and not __fish_seen_subcommand_from members remove help" -l log -d 'Log filter (tracing-subscriber syntax), e.g. `info` or `kubesup=debug`' -r
complete -c kubesup -n "__fish_kubesup_using_subcommand etcd; and not __fish_seen_subcommand_from members remove help" -s h -l help -d 'Print help'
complete -c kubesup -n "__fish_kubesup_using_subcommand etcd; and not __fish_seen_subcommand_from members remove help" -s V -l version -d 'Print version'
complete -c kubesup -n "__fish_kubesup_using_subcommand etcd; and not __fish_seen_subcommand_from members remove help" -f -a "members" -d 'Table of the etcd members: name, ID, peer and client URLs, voter or learner, leader, health and db size, each member asked on its own client URLs'
complete -c kubesup -n "__fish_kubesup_using_subcommand etcd; and not __fish_seen_subcommand_from members remove help" -f -a "remove" -d 'Remove the member of a machine that is gone for good. Refused if the voters left would not have a healthy quorum, and for this machine\'s own member (use `kubesup reset` there)'
complete -c kubesup -n "__fish_kubesup_using_subcommand etcd; and not __fish_seen_subcommand_from members remove help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c kubesup -n "__fish_kubesup_using_subcommand etcd; and __fish_seen_subcommand_from members" -l config -r -F
complete -c kubesup -n "__fish_kubesup_using_subcommand etcd; and __fish_seen_subcommand_from members" -l data-dir -r -F
complete -c kubesup -n "__fish_kubesup_using_subcommand etcd; and __fish_seen_subcommand_from members" -l log-format -d 'Log format of kubesup\'s own output and of forwarded component output' -r
complete -c kubesup -n "__fish_kubesup_using_subcommand etcd; and __fish_seen_subcommand_from members" -l log -d 'Log filter (tracing-subscriber syntax), e.g. `info` or `kubesup=debug`' -r
complete -c kubesup -n "__fish_kubesup_using_subcommand etcd; and __fish_seen_subcommand_from members" -l json -d 'Print JSON instead of a table'
complete -c kubesup -n "__fish_kubesup_using_subcommand etcd; and __fish_seen_subcommand_from members" -s h -l help -d 'Print help'
complete -c kubesup -n "__fish_kubesup_using_subcommand etcd; and __fish_seen_subcommand_from members" -s V -l version -d 'Print version'
complete -c kubesup -n "__fish_kubesup_using_subcommand etcd; and __fish_seen_subcommand_from remove" -l config -r -F
complete -c kubesup -n "__fish_kubesup_using_subcommand etcd; and __fish_seen_subcommand_from remove" -l data-dir -r -F
complete -c kubesup -n "__fish_kubesup_using_subcommand etcd; and __fish_seen_subcommand_from remove" -l log-format -d 'Log format of kubesup\'s own output and of forwarded component output' -r
complete -c kubesup -n "__fish_kubesup_using_subcommand etcd; and __fish_seen_subcommand_from remove" -l log -d 'Log filter (tracing-subscriber syntax), e.g. `info` or `kubesup=debug`' -r
complete -c kubesup -n "__fish_kubesup_using_subcommand etcd; and __fish_seen_subcommand_from remove" -l force -d 'Remove even if the voters left would lack a healthy quorum'
complete -c kubesup -n "__fish_kubesup_using_subcommand etcd; and __fish_seen_subcommand_from remove" -s h -l help -d 'Print help'
complete -c kubesup -n "__fish_kubesup_using_subcommand etcd; and __fish_seen_subcommand_from remove" -s V -l version -d 'Print version'
complete -c kubesup -n "__fish_kubesup_using_subcommand etcd; and __fish_seen_subcommand_from help" -f -a "members" -d 'Table of the etcd members: name, ID, peer and client URLs, voter or learner, leader, health and db size, each member asked on its own client URLs'
complete -c kubesup -n "__fish_kubesup_using_subcommand etcd; and __fish_seen_subcommand_from help" -f -a "remove" -d 'Remove the member of a machine that is gone for good. Refused if the voters left would not have a healthy quorum, and for this machine\'s own member (use `kubesup reset` there)'
complete -c kubesup -n "__fish_kubesup_using_subcommand etcd; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c kubesup -n "__fish_kubesup_using_subcommand backup; and not __fish_seen_subcommand_from list help" -l config -r -F
complete -c kubesup -n "__fish_kubesup_using_subcommand backup; and not __fish_seen_subcommand_from list help" -l data-dir -r -F
complete -c kubesup -n "__fish_kubesup_using_subcommand backup; and not __fish_seen_subcommand_from list help" -s o -l output -d 'Write the archive here [default: the backup dir, named by time and etcd revision]' -r -F
complete -c kubesup -n "__fish_kubesup_using_subcommand backup; and not __fish_seen_subcommand_from list help" -l encrypt-key-file -d 'Encrypt the archive (AES-256-GCM) with the key in this file (at least 32 random bytes, e.g. `head -c 32 /dev/urandom | base64`). Keep it apart from the backups: restore needs it' -r -F
complete -c kubesup -n "__fish_kubesup_using_subcommand backup; and not __fish_seen_subcommand_from list help" -l log-format -d 'Log format of kubesup\'s own output and of forwarded component output' -r
complete -c kubesup -n "__fish_kubesup_using_subcommand backup; and not __fish_seen_subcommand_from list help" -l log -d 'Log filter (tracing-subscriber syntax), e.g. `info` or `kubesup=debug`' -r
complete -c kubesup -n "__fish_kubesup_using_subcommand backup; and not __fish_seen_subcommand_from list help" -s h -l help -d 'Print help'
complete -c kubesup -n "__fish_kubesup_using_subcommand backup; and not __fish_seen_subcommand_from list help" -s V -l version -d 'Print version'
complete -c kubesup -n "__fish_kubesup_using_subcommand backup; and not __fish_seen_subcommand_from list help" -f -a "list" -d 'The backups in this master\'s backup dir: time, size, etcd revision'
complete -c kubesup -n "__fish_kubesup_using_subcommand backup; and not __fish_seen_subcommand_from list help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c kubesup -n "__fish_kubesup_using_subcommand backup; and __fish_seen_subcommand_from list" -l config -r -F
complete -c kubesup -n "__fish_kubesup_using_subcommand backup; and __fish_seen_subcommand_from list" -l data-dir -r -F
complete -c kubesup -n "__fish_kubesup_using_subcommand backup; and __fish_seen_subcommand_from list" -l log-format -d 'Log format of kubesup\'s own output and of forwarded component output' -r
complete -c kubesup -n "__fish_kubesup_using_subcommand backup; and __fish_seen_subcommand_from list" -l log -d 'Log filter (tracing-subscriber syntax), e.g. `info` or `kubesup=debug`' -r
complete -c kubesup -n "__fish_kubesup_using_subcommand backup; and __fish_seen_subcommand_from list" -l json -d 'Print JSON instead of a table'
complete -c kubesup -n "__fish_kubesup_using_subcommand backup; and __fish_seen_subcommand_from list" -s h -l help -d 'Print help'
complete -c kubesup -n "__fish_kubesup_using_subcommand backup; and __fish_seen_subcommand_from list" -s V -l version -d 'Print version'
complete -c kubesup -n "__fish_kubesup_using_subcommand backup; and __fish_seen_subcommand_from help" -f -a "list" -d 'The backups in this master\'s backup dir: time, size, etcd revision'
complete -c kubesup -n "__fish_kubesup_using_subcommand backup; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c kubesup -n "__fish_kubesup_using_subcommand restore" -l config -d 'Config file (YAML); overridden by KUBESUP_* variables, then flags [default: /etc/kubesup/config.yaml if it exists]' -r -F
complete -c kubesup -n "__fish_kubesup_using_subcommand restore" -l data-dir -d 'Where kubesup keeps binaries, PKI, etcd data, logs and state [default: /var/lib/kubesup]' -r -F
complete -c kubesup -n "__fish_kubesup_using_subcommand restore" -l advertise -d 'The address other nodes reach this node on' -r
complete -c kubesup -n "__fish_kubesup_using_subcommand restore" -l node-name -d 'Node name [default: the hostname, lowercased]' -r
complete -c kubesup -n "__fish_kubesup_using_subcommand restore" -l kube-version -d 'Kubernetes version to fetch and run [default: v1.37.1]' -r
complete -c kubesup -n "__fish_kubesup_using_subcommand restore" -l mirror -d 'Release mirror: https://, http://, file:// or a directory, in the upstream path layout' -r
complete -c kubesup -n "__fish_kubesup_using_subcommand restore" -l pod-cidr -d 'Pod network [default: 10.2.0.0/16]' -r
complete -c kubesup -n "__fish_kubesup_using_subcommand restore" -l service-cidr -d 'Service network; its first address is the API service IP [default: 10.3.0.0/24]' -r
complete -c kubesup -n "__fish_kubesup_using_subcommand restore" -l cluster-dns -d 'Cluster DNS service IP, inside the service network [default: 10.3.0.10]' -r
complete -c kubesup -n "__fish_kubesup_using_subcommand restore" -l cluster-domain -d 'Cluster DNS domain [default: cluster.local]' -r
complete -c kubesup -n "__fish_kubesup_using_subcommand restore" -l api-port -d 'kube-apiserver secure port [default: 6443]' -r
complete -c kubesup -n "__fish_kubesup_using_subcommand restore" -l join-port -d 'Join API port [default: 9443]' -r
complete -c kubesup -n "__fish_kubesup_using_subcommand restore" -l schedulable -d 'Also run containerd, kubelet and kube-proxy on a master, so it takes pods' -r -f -a "true\t''
false\t''"
complete -c kubesup -n "__fish_kubesup_using_subcommand restore" -l network -d 'Pod network backend [default: flannel]' -r
complete -c kubesup -n "__fish_kubesup_using_subcommand restore" -l flannel-backend -d 'flannel\'s backend (config key flannel.backend), the same on every node of a cluster: vxlan encapsulates pod traffic and works across any network; host-gw routes it plainly and needs every node on one L2 segment [default: vxlan]' -r
complete -c kubesup -n "__fish_kubesup_using_subcommand restore" -l key-type -d 'Certificate key type [default: ecdsa-p256]' -r
complete -c kubesup -n "__fish_kubesup_using_subcommand restore" -l extra-sans -d 'Extra subject alternative names for the API server certificate (repeatable)' -r
complete -c kubesup -n "__fish_kubesup_using_subcommand restore" -l etcd-version -d 'etcd version to fetch, overriding the release manifest\'s choice' -r
complete -c kubesup -n "__fish_kubesup_using_subcommand restore" -l encrypt-key-file -d 'The key file the archive was encrypted with' -r -F
complete -c kubesup -n "__fish_kubesup_using_subcommand restore" -l log-format -d 'Log format of kubesup\'s own output and of forwarded component output' -r
complete -c kubesup -n "__fish_kubesup_using_subcommand restore" -l log -d 'Log filter (tracing-subscriber syntax), e.g. `info` or `kubesup=debug`' -r
complete -c kubesup -n "__fish_kubesup_using_subcommand restore" -l insecure-skip-verify -d 'Run binaries whose checksum could not be verified. Dangerous; logged loudly'
complete -c kubesup -n "__fish_kubesup_using_subcommand restore" -l force -d 'Restore over a data dir that holds a node: its old state is moved aside (kept, and its path printed), never deleted'
complete -c kubesup -n "__fish_kubesup_using_subcommand restore" -s h -l help -d 'Print help'
complete -c kubesup -n "__fish_kubesup_using_subcommand restore" -s V -l version -d 'Print version'
complete -c kubesup -n "__fish_kubesup_using_subcommand status" -l config -r -F
complete -c kubesup -n "__fish_kubesup_using_subcommand status" -l data-dir -r -F
complete -c kubesup -n "__fish_kubesup_using_subcommand status" -l log-format -d 'Log format of kubesup\'s own output and of forwarded component output' -r
complete -c kubesup -n "__fish_kubesup_using_subcommand status" -l log -d 'Log filter (tracing-subscriber syntax), e.g. `info` or `kubesup=debug`' -r
complete -c kubesup -n "__fish_kubesup_using_subcommand status" -l json -d 'Print JSON instead of a table'
complete -c kubesup -n "__fish_kubesup_using_subcommand status" -s h -l help -d 'Print help'
complete -c kubesup -n "__fish_kubesup_using_subcommand status" -s V -l version -d 'Print version'
complete -c kubesup -n "__fish_kubesup_using_subcommand certs; and not __fish_seen_subcommand_from generate check rotate help" -l log-format -d 'Log format of kubesup\'s own output and of forwarded component output' -r
complete -c kubesup -n "__fish_kubesup_using_subcommand certs; and not __fish_seen_subcommand_from generate check rotate help" -l log -d 'Log filter (tracing-subscriber syntax), e.g. `info` or `kubesup=debug`' -r
complete -c kubesup -n "__fish_kubesup_using_subcommand certs; and not __fish_seen_subcommand_from generate check rotate help" -s h -l help -d 'Print help'
complete -c kubesup -n "__fish_kubesup_using_subcommand certs; and not __fish_seen_subcommand_from generate check rotate help" -s V -l version -d 'Print version'
complete -c kubesup -n "__fish_kubesup_using_subcommand certs; and not __fish_seen_subcommand_from generate check rotate help" -f -a "generate" -d 'Create every missing CA, certificate, key and kubeconfig; re-issue leaves whose names changed or that are due for renewal. Never replaces a CA'
complete -c kubesup -n "__fish_kubesup_using_subcommand certs; and not __fish_seen_subcommand_from generate check rotate help" -f -a "check" -d 'Print a table of every certificate; exit 1 if any expired or expires within 30 days'
complete -c kubesup -n "__fish_kubesup_using_subcommand certs; and not __fish_seen_subcommand_from generate check rotate help" -f -a "rotate" -d 'Re-issue leaf certificates (never CAs)'
complete -c kubesup -n "__fish_kubesup_using_subcommand certs; and not __fish_seen_subcommand_from generate check rotate help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c kubesup -n "__fish_kubesup_using_subcommand certs; and __fish_seen_subcommand_from generate" -l config -d 'Config file (YAML); overridden by KUBESUP_* variables, then flags [default: /etc/kubesup/config.yaml if it exists]' -r -F
complete -c kubesup -n "__fish_kubesup_using_subcommand certs; and __fish_seen_subcommand_from generate" -l data-dir -d 'Where kubesup keeps binaries, PKI, etcd data, logs and state [default: /var/lib/kubesup]' -r -F
complete -c kubesup -n "__fish_kubesup_using_subcommand certs; and __fish_seen_subcommand_from generate" -l advertise -d 'The address other nodes reach this node on' -r
complete -c kubesup -n "__fish_kubesup_using_subcommand certs; and __fish_seen_subcommand_from generate" -l node-name -d 'Node name [default: the hostname, lowercased]' -r
complete -c kubesup -n "__fish_kubesup_using_subcommand certs; and __fish_seen_subcommand_from generate" -l kube-version -d 'Kubernetes version to fetch and run [default: v1.37.1]' -r
complete -c kubesup -n "__fish_kubesup_using_subcommand certs; and __fish_seen_subcommand_from generate" -l mirror -d 'Release mirror: https://, http://, file:// or a directory, in the upstream path layout' -r
complete -c kubesup -n "__fish_kubesup_using_subcommand certs; and __fish_seen_subcommand_from generate" -l pod-cidr -d 'Pod network [default: 10.2.0.0/16]' -r
complete -c kubesup -n "__fish_kubesup_using_subcommand certs; and __fish_seen_subcommand_from generate" -l service-cidr -d 'Service network; its first address is the API service IP [default: 10.3.0.0/24]' -r
complete -c kubesup -n "__fish_kubesup_using_subcommand certs; and __fish_seen_subcommand_from generate" -l cluster-dns -d 'Cluster DNS service IP, inside the service network [default: 10.3.0.10]' -r
complete -c kubesup -n "__fish_kubesup_using_subcommand certs; and __fish_seen_subcommand_from generate" -l cluster-domain -d 'Cluster DNS domain [default: cluster.local]' -r
complete -c kubesup -n "__fish_kubesup_using_subcommand certs; and __fish_seen_subcommand_from generate" -l api-port -d 'kube-apiserver secure port [default: 6443]' -r
complete -c kubesup -n "__fish_kubesup_using_subcommand certs; and __fish_seen_subcommand_from generate" -l join-port -d 'Join API port [default: 9443]' -r
complete -c kubesup -n "__fish_kubesup_using_subcommand certs; and __fish_seen_subcommand_from generate" -l schedulable -d 'Also run containerd, kubelet and kube-proxy on a master, so it takes pods' -r -f -a "true\t''
false\t''"
complete -c kubesup -n "__fish_kubesup_using_subcommand certs; and __fish_seen_subcommand_from generate" -l network -d 'Pod network backend [default: flannel]' -r
complete -c kubesup -n "__fish_kubesup_using_subcommand certs; and __fish_seen_subcommand_from generate" -l flannel-backend -d 'flannel\'s backend (config key flannel.backend), the same on every node of a cluster: vxlan encapsulates pod traffic and works across any network; host-gw routes it plainly and needs every node on one L2 segment [default: vxlan]' -r
complete -c kubesup -n "__fish_kubesup_using_subcommand certs; and __fish_seen_subcommand_from generate" -l key-type -d 'Certificate key type [default: ecdsa-p256]' -r
complete -c kubesup -n "__fish_kubesup_using_subcommand certs; and __fish_seen_subcommand_from generate" -l extra-sans -d 'Extra subject alternative names for the API server certificate (repeatable)' -r
complete -c kubesup -n "__fish_kubesup_using_subcommand certs; and __fish_seen_subcommand_from generate" -l etcd-version -d 'etcd version to fetch, overriding the release manifest\'s choice' -r
complete -c kubesup -n "__fish_kubesup_using_subcommand certs; and __fish_seen_subcommand_from generate" -l log-format -d 'Log format of kubesup\'s own output and of forwarded component output' -r
complete -c kubesup -n "__fish_kubesup_using_subcommand certs; and __fish_seen_subcommand_from generate" -l log -d 'Log filter (tracing-subscriber syntax), e.g. `info` or `kubesup=debug`' -r
complete -c kubesup -n "__fish_kubesup_using_subcommand certs; and __fish_seen_subcommand_from generate" -l insecure-skip-verify -d 'Run binaries whose checksum could not be verified. Dangerous; logged loudly'
complete -c kubesup -n "__fish_kubesup_using_subcommand certs; and __fish_seen_subcommand_from generate" -s h -l help -d 'Print help'
complete -c kubesup -n "__fish_kubesup_using_subcommand certs; and __fish_seen_subcommand_from generate" -s V -l version -d 'Print version'
complete -c kubesup -n "__fish_kubesup_using_subcommand certs; and __fish_seen_subcommand_from check" -l config -r -F
complete -c kubesup -n "__fish_kubesup_using_subcommand certs; and __fish_seen_subcommand_from check" -l data-dir -r -F
complete -c kubesup -n "__fish_kubesup_using_subcommand certs; and __fish_seen_subcommand_from check" -l log-format -d 'Log format of kubesup\'s own output and of forwarded component output' -r
complete -c kubesup -n "__fish_kubesup_using_subcommand certs; and __fish_seen_subcommand_from check" -l log -d 'Log filter (tracing-subscriber syntax), e.g. `info` or `kubesup=debug`' -r
complete -c kubesup -n "__fish_kubesup_using_subcommand certs; and __fish_seen_subcommand_from check" -l json
complete -c kubesup -n "__fish_kubesup_using_subcommand certs; and __fish_seen_subcommand_from check" -s h -l help -d 'Print help'
complete -c kubesup -n "__fish_kubesup_using_subcommand certs; and __fish_seen_subcommand_from check" -s V -l version -d 'Print version'
complete -c kubesup -n "__fish_kubesup_using_subcommand certs; and __fish_seen_subcommand_from rotate" -l config -d 'Config file (YAML); overridden by KUBESUP_* variables, then flags [default: /etc/kubesup/config.yaml if it exists]' -r -F
complete -c kubesup -n "__fish_kubesup_using_subcommand certs; and __fish_seen_subcommand_from rotate" -l data-dir -d 'Where kubesup keeps binaries, PKI, etcd data, logs and state [default: /var/lib/kubesup]' -r -F
complete -c kubesup -n "__fish_kubesup_using_subcommand certs; and __fish_seen_subcommand_from rotate" -l advertise -d 'The address other nodes reach this node on' -r
complete -c kubesup -n "__fish_kubesup_using_subcommand certs; and __fish_seen_subcommand_from rotate" -l node-name -d 'Node name [default: the hostname, lowercased]' -r
complete -c kubesup -n "__fish_kubesup_using_subcommand certs; and __fish_seen_subcommand_from rotate" -l kube-version -d 'Kubernetes version to fetch and run [default: v1.37.1]' -r
complete -c kubesup -n "__fish_kubesup_using_subcommand certs; and __fish_seen_subcommand_from rotate" -l mirror -d 'Release mirror: https://, http://, file:// or a directory, in the upstream path layout' -r
complete -c kubesup -n "__fish_kubesup_using_subcommand certs; and __fish_seen_subcommand_from rotate" -l pod-cidr -d 'Pod network [default: 10.2.0.0/16]' -r
complete -c kubesup -n "__fish_kubesup_using_subcommand certs; and __fish_seen_subcommand_from rotate" -l service-cidr -d 'Service network; its first address is the API service IP [default: 10.3.0.0/24]' -r
complete -c kubesup -n "__fish_kubesup_using_subcommand certs; and __fish_seen_subcommand_from rotate" -l cluster-dns -d 'Cluster DNS service IP, inside the service network [default: 10.3.0.10]' -r
complete -c kubesup -n "__fish_kubesup_using_subcommand certs; and __fish_seen_subcommand_from rotate" -l cluster-domain -d 'Cluster DNS domain [default: cluster.local]' -r
complete -c kubesup -n "__fish_kubesup_using_subcommand certs; and __fish_seen_subcommand_from rotate" -l api-port -d 'kube-apiserver secure port [default: 6443]' -r
complete -c kubesup -n "__fish_kubesup_using_subcommand certs; and __fish_seen_subcommand_from rotate" -l join-port -d 'Join API port [default: 9443]' -r
complete -c kubesup -n "__fish_kubesup_using_subcommand certs; and __fish_seen_subcommand_from rotate" -l schedulable -d 'Also run containerd, kubelet and kube-proxy on a master, so it takes pods' -r -f -a "true\t''
false\t''"
complete -c kubesup -n "__fish_kubesup_using_subcommand certs; and __fish_seen_subcommand_from rotate" -l network -d 'Pod network backend [default: flannel]' -r
complete -c kubesup -n "__fish_kubesup_using_subcommand certs; and __fish_seen_subcommand_from rotate" -l flannel-backend -d 'flannel\'s backend (config key flannel.backend), the same on every node of a cluster: vxlan encapsulates pod traffic and works across any network; host-gw routes it plainly and needs every node on one L2 segment [default: vxlan]' -r
complete -c kubesup -n "__fish_kubesup_using_subcommand certs; and __fish_seen_subcommand_from rotate" -l key-type -d 'Certificate key type [default: ecdsa-p256]' -r
complete -c kubesup -n "__fish_kubesup_using_subcommand certs; and __fish_seen_subcommand_from rotate" -l extra-sans -d 'Extra subject alternative names for the API server certificate (repeatable)' -r
complete -c kubesup -n "__fish_kubesup_using_subcommand certs; and __fish_seen_subcommand_from rotate" -l etcd-version -d 'etcd version to fetch, overriding the release manifest\'s choice' -r
complete -c kubesup -n "__fish_kubesup_using_subcommand certs; and __fish_seen_subcommand_from rotate" -l log-format -d 'Log format of kubesup\'s own output and of forwarded component output' -r
complete -c kubesup -n "__fish_kubesup_using_subcommand certs; and __fish_seen_subcommand_from rotate" -l log -d 'Log filter (tracing-subscriber syntax), e.g. `info` or `kubesup=debug`' -r
complete -c kubesup -n "__fish_kubesup_using_subcommand certs; and __fish_seen_subcommand_from rotate" -l insecure-skip-verify -d 'Run binaries whose checksum could not be verified. Dangerous; logged loudly'
complete -c kubesup -n "__fish_kubesup_using_subcommand certs; and __fish_seen_subcommand_from rotate" -l all -d 'Re-issue every leaf'
complete -c kubesup -n "__fish_kubesup_using_subcommand certs; and __fish_seen_subcommand_from rotate" -s h -l help -d 'Print help'
complete -c kubesup -n "__fish_kubesup_using_subcommand certs; and __fish_seen_subcommand_from rotate" -s V -l version -d 'Print version'
complete -c kubesup -n "__fish_kubesup_using_subcommand certs; and __fish_seen_subcommand_from help" -f -a "generate" -d 'Create every missing CA, certificate, key and kubeconfig; re-issue leaves whose names changed or that are due for renewal. Never replaces a CA'
complete -c kubesup -n "__fish_kubesup_using_subcommand certs; and __fish_seen_subcommand_from help" -f -a "check" -d 'Print a table of every certificate; exit 1 if any expired or expires within 30 days'
complete -c kubesup -n "__fish_kubesup_using_subcommand certs; and __fish_seen_subcommand_from help" -f -a "rotate" -d 'Re-issue leaf certificates (never CAs)'
complete -c kubesup -n "__fish_kubesup_using_subcommand certs; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c kubesup -n "__fish_kubesup_using_subcommand fetch" -l config -d 'Config file (YAML); overridden by KUBESUP_* variables, then flags [default: /etc/kubesup/config.yaml if it exists]' -r -F
complete -c kubesup -n "__fish_kubesup_using_subcommand fetch" -l data-dir -d 'Where kubesup keeps binaries, PKI, etcd data, logs and state [default: /var/lib/kubesup]' -r -F
complete -c kubesup -n "__fish_kubesup_using_subcommand fetch" -l advertise -d 'The address other nodes reach this node on' -r
complete -c kubesup -n "__fish_kubesup_using_subcommand fetch" -l node-name -d 'Node name [default: the hostname, lowercased]' -r
complete -c kubesup -n "__fish_kubesup_using_subcommand fetch" -l kube-version -d 'Kubernetes version to fetch and run [default: v1.37.1]' -r
complete -c kubesup -n "__fish_kubesup_using_subcommand fetch" -l mirror -d 'Release mirror: https://, http://, file:// or a directory, in the upstream path layout' -r
complete -c kubesup -n "__fish_kubesup_using_subcommand fetch" -l pod-cidr -d 'Pod network [default: 10.2.0.0/16]' -r
complete -c kubesup -n "__fish_kubesup_using_subcommand fetch" -l service-cidr -d 'Service network; its first address is the API service IP [default: 10.3.0.0/24]' -r
complete -c kubesup -n "__fish_kubesup_using_subcommand fetch" -l cluster-dns -d 'Cluster DNS service IP, inside the service network [default: 10.3.0.10]' -r
complete -c kubesup -n "__fish_kubesup_using_subcommand fetch" -l cluster-domain -d 'Cluster DNS domain [default: cluster.local]' -r
complete -c kubesup -n "__fish_kubesup_using_subcommand fetch" -l api-port -d 'kube-apiserver secure port [default: 6443]' -r
complete -c kubesup -n "__fish_kubesup_using_subcommand fetch" -l join-port -d 'Join API port [default: 9443]' -r
complete -c kubesup -n "__fish_kubesup_using_subcommand fetch" -l schedulable -d 'Also run containerd, kubelet and kube-proxy on a master, so it takes pods' -r -f -a "true\t''
false\t''"
complete -c kubesup -n "__fish_kubesup_using_subcommand fetch" -l network -d 'Pod network backend [default: flannel]' -r
complete -c kubesup -n "__fish_kubesup_using_subcommand fetch" -l flannel-backend -d 'flannel\'s backend (config key flannel.backend), the same on every node of a cluster: vxlan encapsulates pod traffic and works across any network; host-gw routes it plainly and needs every node on one L2 segment [default: vxlan]' -r
complete -c kubesup -n "__fish_kubesup_using_subcommand fetch" -l key-type -d 'Certificate key type [default: ecdsa-p256]' -r
complete -c kubesup -n "__fish_kubesup_using_subcommand fetch" -l extra-sans -d 'Extra subject alternative names for the API server certificate (repeatable)' -r
complete -c kubesup -n "__fish_kubesup_using_subcommand fetch" -l etcd-version -d 'etcd version to fetch, overriding the release manifest\'s choice' -r
complete -c kubesup -n "__fish_kubesup_using_subcommand fetch" -l role -d 'Node role to fetch for' -r -f -a "master\t''
worker\t''"
complete -c kubesup -n "__fish_kubesup_using_subcommand fetch" -l bundle -d 'Write everything fetched into one tar, with its manifest and hashes, for air-gapped nodes' -r -F
complete -c kubesup -n "__fish_kubesup_using_subcommand fetch" -l from-bundle -d 'Load binaries from a bundle made by `--bundle` instead of the network' -r -F
complete -c kubesup -n "__fish_kubesup_using_subcommand fetch" -l log-format -d 'Log format of kubesup\'s own output and of forwarded component output' -r
complete -c kubesup -n "__fish_kubesup_using_subcommand fetch" -l log -d 'Log filter (tracing-subscriber syntax), e.g. `info` or `kubesup=debug`' -r
complete -c kubesup -n "__fish_kubesup_using_subcommand fetch" -l insecure-skip-verify -d 'Run binaries whose checksum could not be verified. Dangerous; logged loudly'
complete -c kubesup -n "__fish_kubesup_using_subcommand fetch" -l with-runtime -d 'Also fetch containerd, runc and the CNI plugins'
complete -c kubesup -n "__fish_kubesup_using_subcommand fetch" -l dry-run -d 'Print each download (name, URL, where its checksum comes from, what it provides) without fetching anything'
complete -c kubesup -n "__fish_kubesup_using_subcommand fetch" -s h -l help -d 'Print help'
complete -c kubesup -n "__fish_kubesup_using_subcommand fetch" -s V -l version -d 'Print version'
complete -c kubesup -n "__fish_kubesup_using_subcommand install; and not __fish_seen_subcommand_from master worker help" -l log-format -d 'Log format of kubesup\'s own output and of forwarded component output' -r
complete -c kubesup -n "__fish_kubesup_using_subcommand install; and not __fish_seen_subcommand_from master worker help" -l log -d 'Log filter (tracing-subscriber syntax), e.g. `info` or `kubesup=debug`' -r
complete -c kubesup -n "__fish_kubesup_using_subcommand install; and not __fish_seen_subcommand_from master worker help" -s h -l help -d 'Print help'
complete -c kubesup -n "__fish_kubesup_using_subcommand install; and not __fish_seen_subcommand_from master worker help" -s V -l version -d 'Print version'
complete -c kubesup -n "__fish_kubesup_using_subcommand install; and not __fish_seen_subcommand_from master worker help" -f -a "master" -d 'Install the master service: /etc/kubesup/config.yaml from these flags, the systemd unit, then enable and start it (or say what to run without systemd)'
complete -c kubesup -n "__fish_kubesup_using_subcommand install; and not __fish_seen_subcommand_from master worker help" -f -a "worker" -d 'Install the worker service, with its join URL and token (kept in /etc/kubesup/token, 0600)'
complete -c kubesup -n "__fish_kubesup_using_subcommand install; and not __fish_seen_subcommand_from master worker help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c kubesup -n "__fish_kubesup_using_subcommand install; and __fish_seen_subcommand_from master" -l config -d 'Config file (YAML); overridden by KUBESUP_* variables, then flags [default: /etc/kubesup/config.yaml if it exists]' -r -F
complete -c kubesup -n "__fish_kubesup_using_subcommand install; and __fish_seen_subcommand_from master" -l data-dir -d 'Where kubesup keeps binaries, PKI, etcd data, logs and state [default: /var/lib/kubesup]' -r -F
complete -c kubesup -n "__fish_kubesup_using_subcommand install; and __fish_seen_subcommand_from master" -l advertise -d 'The address other nodes reach this node on' -r
complete -c kubesup -n "__fish_kubesup_using_subcommand install; and __fish_seen_subcommand_from master" -l node-name -d 'Node name [default: the hostname, lowercased]' -r
complete -c kubesup -n "__fish_kubesup_using_subcommand install; and __fish_seen_subcommand_from master" -l kube-version -d 'Kubernetes version to fetch and run [default: v1.37.1]' -r
complete -c kubesup -n "__fish_kubesup_using_subcommand install; and __fish_seen_subcommand_from master" -l mirror -d 'Release mirror: https://, http://, file:// or a directory, in the upstream path layout' -r
complete -c kubesup -n "__fish_kubesup_using_subcommand install; and __fish_seen_subcommand_from master" -l pod-cidr -d 'Pod network [default: 10.2.0.0/16]' -r
complete -c kubesup -n "__fish_kubesup_using_subcommand install; and __fish_seen_subcommand_from master" -l service-cidr -d 'Service network; its first address is the API service IP [default: 10.3.0.0/24]' -r
complete -c kubesup -n "__fish_kubesup_using_subcommand install; and __fish_seen_subcommand_from master" -l cluster-dns -d 'Cluster DNS service IP, inside the service network [default: 10.3.0.10]' -r
complete -c kubesup -n "__fish_kubesup_using_subcommand install; and __fish_seen_subcommand_from master" -l cluster-domain -d 'Cluster DNS domain [default: cluster.local]' -r
complete -c kubesup -n "__fish_kubesup_using_subcommand install; and __fish_seen_subcommand_from master" -l api-port -d 'kube-apiserver secure port [default: 6443]' -r
complete -c kubesup -n "__fish_kubesup_using_subcommand install; and __fish_seen_subcommand_from master" -l join-port -d 'Join API port [default: 9443]' -r
complete -c kubesup -n "__fish_kubesup_using_subcommand install; and __fish_seen_subcommand_from master" -l schedulable -d 'Also run containerd, kubelet and kube-proxy on a master, so it takes pods' -r -f -a "true\t''
false\t''"
complete -c kubesup -n "__fish_kubesup_using_subcommand install; and __fish_seen_subcommand_from master" -l network -d 'Pod network backend [default: flannel]' -r
complete -c kubesup -n "__fish_kubesup_using_subcommand install; and __fish_seen_subcommand_from master" -l flannel-backend -d 'flannel\'s backend (config key flannel.backend), the same on every node of a cluster: vxlan encapsulates pod traffic and works across any network; host-gw routes it plainly and needs every node on one L2 segment [default: vxlan]' -r
complete -c kubesup -n "__fish_kubesup_using_subcommand install; and __fish_seen_subcommand_from master" -l key-type -d 'Certificate key type [default: ecdsa-p256]' -r
complete -c kubesup -n "__fish_kubesup_using_subcommand install; and __fish_seen_subcommand_from master" -l extra-sans -d 'Extra subject alternative names for the API server certificate (repeatable)' -r
complete -c kubesup -n "__fish_kubesup_using_subcommand install; and __fish_seen_subcommand_from master" -l etcd-version -d 'etcd version to fetch, overriding the release manifest\'s choice' -r
complete -c kubesup -n "__fish_kubesup_using_subcommand install; and __fish_seen_subcommand_from master" -l ignore-preflight -d 'Skip a preflight check by name (repeatable; `all` skips every check)' -r
complete -c kubesup -n "__fish_kubesup_using_subcommand install; and __fish_seen_subcommand_from master" -l join -d 'Join the control plane of an existing cluster through the join API of any of its masters, e.g. https://10.0.0.1:9443, with a token from `kubesup token create --role master`. Only read while this data dir holds no etcd data: once it does, this master is a member, and running it again resumes or restarts that member' -r
complete -c kubesup -n "__fish_kubesup_using_subcommand install; and __fish_seen_subcommand_from master" -l token -d 'Control-plane join token (prefer --token-file or KUBESUP_TOKEN: flags are visible in the process list)' -r
complete -c kubesup -n "__fish_kubesup_using_subcommand install; and __fish_seen_subcommand_from master" -l token-file -d 'File holding the control-plane join token' -r -F
complete -c kubesup -n "__fish_kubesup_using_subcommand install; and __fish_seen_subcommand_from master" -l root -d 'Install below this directory instead of / (building an image); nothing is started' -r -F
complete -c kubesup -n "__fish_kubesup_using_subcommand install; and __fish_seen_subcommand_from master" -l log-format -d 'Log format of kubesup\'s own output and of forwarded component output' -r
complete -c kubesup -n "__fish_kubesup_using_subcommand install; and __fish_seen_subcommand_from master" -l log -d 'Log filter (tracing-subscriber syntax), e.g. `info` or `kubesup=debug`' -r
complete -c kubesup -n "__fish_kubesup_using_subcommand install; and __fish_seen_subcommand_from master" -l insecure-skip-verify -d 'Run binaries whose checksum could not be verified. Dangerous; logged loudly'
complete -c kubesup -n "__fish_kubesup_using_subcommand install; and __fish_seen_subcommand_from master" -l force -d 'Let a node name that already joined rejoin with a new key (after `kubectl delete node` and `kubesup reset` on a reinstalled machine)'
complete -c kubesup -n "__fish_kubesup_using_subcommand install; and __fish_seen_subcommand_from master" -l cluster-reset -d 'Lost quorum: start this master\'s etcd once as a one-member cluster from its own data (etcd\'s --force-new-cluster). Recorded in the data dir, so a later start with the flag still given does not reset again. The other masters then `kubesup reset` and join again'
complete -c kubesup -n "__fish_kubesup_using_subcommand install; and __fish_seen_subcommand_from master" -l overwrite -d 'Replace an existing, different config or unit (the old file is kept as FILE.bak)'
complete -c kubesup -n "__fish_kubesup_using_subcommand install; and __fish_seen_subcommand_from master" -s h -l help -d 'Print help'
complete -c kubesup -n "__fish_kubesup_using_subcommand install; and __fish_seen_subcommand_from master" -s V -l version -d 'Print version'
complete -c kubesup -n "__fish_kubesup_using_subcommand install; and __fish_seen_subcommand_from worker" -l config -d 'Config file (YAML); overridden by KUBESUP_* variables, then flags [default: /etc/kubesup/config.yaml if it exists]' -r -F
complete -c kubesup -n "__fish_kubesup_using_subcommand install; and __fish_seen_subcommand_from worker" -l data-dir -d 'Where kubesup keeps binaries, PKI, etcd data, logs and state [default: /var/lib/kubesup]' -r -F
complete -c kubesup -n "__fish_kubesup_using_subcommand install; and __fish_seen_subcommand_from worker" -l advertise -d 'The address other nodes reach this node on' -r
complete -c kubesup -n "__fish_kubesup_using_subcommand install; and __fish_seen_subcommand_from worker" -l node-name -d 'Node name [default: the hostname, lowercased]' -r
complete -c kubesup -n "__fish_kubesup_using_subcommand install; and __fish_seen_subcommand_from worker" -l kube-version -d 'Kubernetes version to fetch and run [default: v1.37.1]' -r
complete -c kubesup -n "__fish_kubesup_using_subcommand install; and __fish_seen_subcommand_from worker" -l mirror -d 'Release mirror: https://, http://, file:// or a directory, in the upstream path layout' -r
complete -c kubesup -n "__fish_kubesup_using_subcommand install; and __fish_seen_subcommand_from worker" -l pod-cidr -d 'Pod network [default: 10.2.0.0/16]' -r
complete -c kubesup -n "__fish_kubesup_using_subcommand install; and __fish_seen_subcommand_from worker" -l service-cidr -d 'Service network; its first address is the API service IP [default: 10.3.0.0/24]' -r
complete -c kubesup -n "__fish_kubesup_using_subcommand install; and __fish_seen_subcommand_from worker" -l cluster-dns -d 'Cluster DNS service IP, inside the service network [default: 10.3.0.10]' -r
complete -c kubesup -n "__fish_kubesup_using_subcommand install; and __fish_seen_subcommand_from worker" -l cluster-domain -d 'Cluster DNS domain [default: cluster.local]' -r
complete -c kubesup -n "__fish_kubesup_using_subcommand install; and __fish_seen_subcommand_from worker" -l api-port -d 'kube-apiserver secure port [default: 6443]' -r
complete -c kubesup -n "__fish_kubesup_using_subcommand install; and __fish_seen_subcommand_from worker" -l join-port -d 'Join API port [default: 9443]' -r
complete -c kubesup -n "__fish_kubesup_using_subcommand install; and __fish_seen_subcommand_from worker" -l schedulable -d 'Also run containerd, kubelet and kube-proxy on a master, so it takes pods' -r -f -a "true\t''
false\t''"
complete -c kubesup -n "__fish_kubesup_using_subcommand install; and __fish_seen_subcommand_from worker" -l network -d 'Pod network backend [default: flannel]' -r
complete -c kubesup -n "__fish_kubesup_using_subcommand install; and __fish_seen_subcommand_from worker" -l flannel-backend -d 'flannel\'s backend (config key flannel.backend), the same on every node of a cluster: vxlan encapsulates pod traffic and works across any network; host-gw routes it plainly and needs every node on one L2 segment [default: vxlan]' -r
complete -c kubesup -n "__fish_kubesup_using_subcommand install; and __fish_seen_subcommand_from worker" -l key-type -d 'Certificate key type [default: ecdsa-p256]' -r
complete -c kubesup -n "__fish_kubesup_using_subcommand install; and __fish_seen_subcommand_from worker" -l extra-sans -d 'Extra subject alternative names for the API server certificate (repeatable)' -r
complete -c kubesup -n "__fish_kubesup_using_subcommand install; and __fish_seen_subcommand_from worker" -l etcd-version -d 'etcd version to fetch, overriding the release manifest\'s choice' -r
complete -c kubesup -n "__fish_kubesup_using_subcommand install; and __fish_seen_subcommand_from worker" -l join -d 'Join API of a master, e.g. https://10.0.0.1:9443' -r
complete -c kubesup -n "__fish_kubesup_using_subcommand install; and __fish_seen_subcommand_from worker" -l token -d 'Join token from `kubesup token create` (prefer --token-file or KUBESUP_TOKEN: flags are visible in the process list)' -r
complete -c kubesup -n "__fish_kubesup_using_subcommand install; and __fish_seen_subcommand_from worker" -l token-file -d 'File holding the join token' -r -F
complete -c kubesup -n "__fish_kubesup_using_subcommand install; and __fish_seen_subcommand_from worker" -l ignore-preflight -r
complete -c kubesup -n "__fish_kubesup_using_subcommand install; and __fish_seen_subcommand_from worker" -l root -d 'Install below this directory instead of / (building an image); nothing is started' -r -F
complete -c kubesup -n "__fish_kubesup_using_subcommand install; and __fish_seen_subcommand_from worker" -l log-format -d 'Log format of kubesup\'s own output and of forwarded component output' -r
complete -c kubesup -n "__fish_kubesup_using_subcommand install; and __fish_seen_subcommand_from worker" -l log -d 'Log filter (tracing-subscriber syntax), e.g. `info` or `kubesup=debug`' -r
complete -c kubesup -n "__fish_kubesup_using_subcommand install; and __fish_seen_subcommand_from worker" -l insecure-skip-verify -d 'Run binaries whose checksum could not be verified. Dangerous; logged loudly'
complete -c kubesup -n "__fish_kubesup_using_subcommand install; and __fish_seen_subcommand_from worker" -l overwrite -d 'Replace an existing, different config or unit (the old file is kept as FILE.bak)'
complete -c kubesup -n "__fish_kubesup_using_subcommand install; and __fish_seen_subcommand_from worker" -s h -l help -d 'Print help'
complete -c kubesup -n "__fish_kubesup_using_subcommand install; and __fish_seen_subcommand_from worker" -s V -l version -d 'Print version'
complete -c kubesup -n "__fish_kubesup_using_subcommand install; and __fish_seen_subcommand_from help" -f -a "master" -d 'Install the master service: /etc/kubesup/config.yaml from these flags, the systemd unit, then enable and start it (or say what to run without systemd)'
complete -c kubesup -n "__fish_kubesup_using_subcommand install; and __fish_seen_subcommand_from help" -f -a "worker" -d 'Install the worker service, with its join URL and token (kept in /etc/kubesup/token, 0600)'
complete -c kubesup -n "__fish_kubesup_using_subcommand install; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c kubesup -n "__fish_kubesup_using_subcommand uninstall" -l root -d 'The root `kubesup install --root` used' -r -F
complete -c kubesup -n "__fish_kubesup_using_subcommand uninstall" -l log-format -d 'Log format of kubesup\'s own output and of forwarded component output' -r
complete -c kubesup -n "__fish_kubesup_using_subcommand uninstall" -l log -d 'Log filter (tracing-subscriber syntax), e.g. `info` or `kubesup=debug`' -r
complete -c kubesup -n "__fish_kubesup_using_subcommand uninstall" -s h -l help -d 'Print help'
complete -c kubesup -n "__fish_kubesup_using_subcommand uninstall" -s V -l version -d 'Print version'
complete -c kubesup -n "__fish_kubesup_using_subcommand reset" -l config -r -F
complete -c kubesup -n "__fish_kubesup_using_subcommand reset" -l data-dir -r -F
complete -c kubesup -n "__fish_kubesup_using_subcommand reset" -l log-format -d 'Log format of kubesup\'s own output and of forwarded component output' -r
complete -c kubesup -n "__fish_kubesup_using_subcommand reset" -l log -d 'Log filter (tracing-subscriber syntax), e.g. `info` or `kubesup=debug`' -r
complete -c kubesup -n "__fish_kubesup_using_subcommand reset" -s y -l yes -d 'Do not ask for confirmation'
complete -c kubesup -n "__fish_kubesup_using_subcommand reset" -l force -d 'On a master of several: reset even when taking its etcd member out would leave the others without a quorum, or when they cannot be reached'
complete -c kubesup -n "__fish_kubesup_using_subcommand reset" -s h -l help -d 'Print help'
complete -c kubesup -n "__fish_kubesup_using_subcommand reset" -s V -l version -d 'Print version'
complete -c kubesup -n "__fish_kubesup_using_subcommand config; and not __fish_seen_subcommand_from default check help" -l log-format -d 'Log format of kubesup\'s own output and of forwarded component output' -r
complete -c kubesup -n "__fish_kubesup_using_subcommand config; and not __fish_seen_subcommand_from default check help" -l log -d 'Log filter (tracing-subscriber syntax), e.g. `info` or `kubesup=debug`' -r
complete -c kubesup -n "__fish_kubesup_using_subcommand config; and not __fish_seen_subcommand_from default check help" -s h -l help -d 'Print help'
complete -c kubesup -n "__fish_kubesup_using_subcommand config; and not __fish_seen_subcommand_from default check help" -s V -l version -d 'Print version'
complete -c kubesup -n "__fish_kubesup_using_subcommand config; and not __fish_seen_subcommand_from default check help" -f -a "default" -d 'Print the default config file, with comments'
complete -c kubesup -n "__fish_kubesup_using_subcommand config; and not __fish_seen_subcommand_from default check help" -f -a "check" -d 'Validate a config file; print every problem, one per line, and exit 1 if any'
complete -c kubesup -n "__fish_kubesup_using_subcommand config; and not __fish_seen_subcommand_from default check help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c kubesup -n "__fish_kubesup_using_subcommand config; and __fish_seen_subcommand_from default" -l log-format -d 'Log format of kubesup\'s own output and of forwarded component output' -r
complete -c kubesup -n "__fish_kubesup_using_subcommand config; and __fish_seen_subcommand_from default" -l log -d 'Log filter (tracing-subscriber syntax), e.g. `info` or `kubesup=debug`' -r
complete -c kubesup -n "__fish_kubesup_using_subcommand config; and __fish_seen_subcommand_from default" -s h -l help -d 'Print help'
complete -c kubesup -n "__fish_kubesup_using_subcommand config; and __fish_seen_subcommand_from default" -s V -l version -d 'Print version'
complete -c kubesup -n "__fish_kubesup_using_subcommand config; and __fish_seen_subcommand_from check" -l config -d 'Config file (YAML); overridden by KUBESUP_* variables, then flags [default: /etc/kubesup/config.yaml if it exists]' -r -F
complete -c kubesup -n "__fish_kubesup_using_subcommand config; and __fish_seen_subcommand_from check" -l data-dir -d 'Where kubesup keeps binaries, PKI, etcd data, logs and state [default: /var/lib/kubesup]' -r -F
complete -c kubesup -n "__fish_kubesup_using_subcommand config; and __fish_seen_subcommand_from check" -l advertise -d 'The address other nodes reach this node on' -r
complete -c kubesup -n "__fish_kubesup_using_subcommand config; and __fish_seen_subcommand_from check" -l node-name -d 'Node name [default: the hostname, lowercased]' -r
complete -c kubesup -n "__fish_kubesup_using_subcommand config; and __fish_seen_subcommand_from check" -l kube-version -d 'Kubernetes version to fetch and run [default: v1.37.1]' -r
complete -c kubesup -n "__fish_kubesup_using_subcommand config; and __fish_seen_subcommand_from check" -l mirror -d 'Release mirror: https://, http://, file:// or a directory, in the upstream path layout' -r
complete -c kubesup -n "__fish_kubesup_using_subcommand config; and __fish_seen_subcommand_from check" -l pod-cidr -d 'Pod network [default: 10.2.0.0/16]' -r
complete -c kubesup -n "__fish_kubesup_using_subcommand config; and __fish_seen_subcommand_from check" -l service-cidr -d 'Service network; its first address is the API service IP [default: 10.3.0.0/24]' -r
complete -c kubesup -n "__fish_kubesup_using_subcommand config; and __fish_seen_subcommand_from check" -l cluster-dns -d 'Cluster DNS service IP, inside the service network [default: 10.3.0.10]' -r
complete -c kubesup -n "__fish_kubesup_using_subcommand config; and __fish_seen_subcommand_from check" -l cluster-domain -d 'Cluster DNS domain [default: cluster.local]' -r
complete -c kubesup -n "__fish_kubesup_using_subcommand config; and __fish_seen_subcommand_from check" -l api-port -d 'kube-apiserver secure port [default: 6443]' -r
complete -c kubesup -n "__fish_kubesup_using_subcommand config; and __fish_seen_subcommand_from check" -l join-port -d 'Join API port [default: 9443]' -r
complete -c kubesup -n "__fish_kubesup_using_subcommand config; and __fish_seen_subcommand_from check" -l schedulable -d 'Also run containerd, kubelet and kube-proxy on a master, so it takes pods' -r -f -a "true\t''
false\t''"
complete -c kubesup -n "__fish_kubesup_using_subcommand config; and __fish_seen_subcommand_from check" -l network -d 'Pod network backend [default: flannel]' -r
complete -c kubesup -n "__fish_kubesup_using_subcommand config; and __fish_seen_subcommand_from check" -l flannel-backend -d 'flannel\'s backend (config key flannel.backend), the same on every node of a cluster: vxlan encapsulates pod traffic and works across any network; host-gw routes it plainly and needs every node on one L2 segment [default: vxlan]' -r
complete -c kubesup -n "__fish_kubesup_using_subcommand config; and __fish_seen_subcommand_from check" -l key-type -d 'Certificate key type [default: ecdsa-p256]' -r
complete -c kubesup -n "__fish_kubesup_using_subcommand config; and __fish_seen_subcommand_from check" -l extra-sans -d 'Extra subject alternative names for the API server certificate (repeatable)' -r
complete -c kubesup -n "__fish_kubesup_using_subcommand config; and __fish_seen_subcommand_from check" -l etcd-version -d 'etcd version to fetch, overriding the release manifest\'s choice' -r
complete -c kubesup -n "__fish_kubesup_using_subcommand config; and __fish_seen_subcommand_from check" -l log-format -d 'Log format of kubesup\'s own output and of forwarded component output' -r
complete -c kubesup -n "__fish_kubesup_using_subcommand config; and __fish_seen_subcommand_from check" -l log -d 'Log filter (tracing-subscriber syntax), e.g. `info` or `kubesup=debug`' -r
complete -c kubesup -n "__fish_kubesup_using_subcommand config; and __fish_seen_subcommand_from check" -l insecure-skip-verify -d 'Run binaries whose checksum could not be verified. Dangerous; logged loudly'
complete -c kubesup -n "__fish_kubesup_using_subcommand config; and __fish_seen_subcommand_from check" -s h -l help -d 'Print help'
complete -c kubesup -n "__fish_kubesup_using_subcommand config; and __fish_seen_subcommand_from check" -s V -l version -d 'Print version'
complete -c kubesup -n "__fish_kubesup_using_subcommand config; and __fish_seen_subcommand_from help" -f -a "default" -d 'Print the default config file, with comments'
complete -c kubesup -n "__fish_kubesup_using_subcommand config; and __fish_seen_subcommand_from help" -f -a "check" -d 'Validate a config file; print every problem, one per line, and exit 1 if any'
complete -c kubesup -n "__fish_kubesup_using_subcommand config; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c kubesup -n "__fish_kubesup_using_subcommand completions" -l log-format -d 'Log format of kubesup\'s own output and of forwarded component output' -r
complete -c kubesup -n "__fish_kubesup_using_subcommand completions" -l log -d 'Log filter (tracing-subscriber syntax), e.g. `info` or `kubesup=debug`' -r
complete -c kubesup -n "__fish_kubesup_using_subcommand completions" -s h -l help -d 'Print help'
complete -c kubesup -n "__fish_kubesup_using_subcommand completions" -s V -l version -d 'Print version'
complete -c kubesup -n "__fish_kubesup_using_subcommand version" -l log-format -d 'Log format of kubesup\'s own output and of forwarded component output' -r
complete -c kubesup -n "__fish_kubesup_using_subcommand version" -l log -d 'Log filter (tracing-subscriber syntax), e.g. `info` or `kubesup=debug`' -r
complete -c kubesup -n "__fish_kubesup_using_subcommand version" -s h -l help -d 'Print help'
complete -c kubesup -n "__fish_kubesup_using_subcommand version" -s V -l version -d 'Print version'
complete -c kubesup -n "__fish_kubesup_using_subcommand supervise" -l data-dir -d 'Data dir for the lock, control socket, pid record and logs' -r -F
complete -c kubesup -n "__fish_kubesup_using_subcommand supervise" -l log-format -d 'Log format of kubesup\'s own output and of forwarded component output' -r
complete -c kubesup -n "__fish_kubesup_using_subcommand supervise" -l log -d 'Log filter (tracing-subscriber syntax), e.g. `info` or `kubesup=debug`' -r
complete -c kubesup -n "__fish_kubesup_using_subcommand supervise" -s h -l help -d 'Print help'
complete -c kubesup -n "__fish_kubesup_using_subcommand supervise" -s V -l version -d 'Print version'
complete -c kubesup -n "__fish_kubesup_using_subcommand manpage" -l out-dir -r -F
complete -c kubesup -n "__fish_kubesup_using_subcommand manpage" -l log-format -d 'Log format of kubesup\'s own output and of forwarded component output' -r
complete -c kubesup -n "__fish_kubesup_using_subcommand manpage" -l log -d 'Log filter (tracing-subscriber syntax), e.g. `info` or `kubesup=debug`' -r
complete -c kubesup -n "__fish_kubesup_using_subcommand manpage" -s h -l help -d 'Print help'
complete -c kubesup -n "__fish_kubesup_using_subcommand manpage" -s V -l version -d 'Print version'
complete -c kubesup -n "__fish_kubesup_using_subcommand help; and not __fish_seen_subcommand_from master worker token etcd backup restore status certs fetch install uninstall reset config completions version supervise manpage help" -f -a "master" -d 'Run a control-plane node: etcd, kube-apiserver, controller-manager, scheduler (and containerd, kubelet, kube-proxy with --schedulable)'
complete -c kubesup -n "__fish_kubesup_using_subcommand help; and not __fish_seen_subcommand_from master worker token etcd backup restore status certs fetch install uninstall reset config completions version supervise manpage help" -f -a "worker" -d 'Join a cluster and run containerd, kubelet, kube-proxy and flannel'
complete -c kubesup -n "__fish_kubesup_using_subcommand help; and not __fish_seen_subcommand_from master worker token etcd backup restore status certs fetch install uninstall reset config completions version supervise manpage help" -f -a "token" -d 'Create, list and delete join tokens (on a master)'
complete -c kubesup -n "__fish_kubesup_using_subcommand help; and not __fish_seen_subcommand_from master worker token etcd backup restore status certs fetch install uninstall reset config completions version supervise manpage help" -f -a "etcd" -d 'List this cluster\'s etcd members, or remove one whose machine is gone (on a master)'
complete -c kubesup -n "__fish_kubesup_using_subcommand help; and not __fish_seen_subcommand_from master worker token etcd backup restore status certs fetch install uninstall reset config completions version supervise manpage help" -f -a "backup" -d 'Back up this master: etcd\'s snapshot, the cluster\'s CA and service-account keys and its settings, in one archive (0600); or list the scheduled backups'
complete -c kubesup -n "__fish_kubesup_using_subcommand help; and not __fish_seen_subcommand_from master worker token etcd backup restore status certs fetch install uninstall reset config completions version supervise manpage help" -f -a "restore" -d 'Restore a backup into an empty data dir, as a new one-member cluster with the same CAs; then `kubesup master` on that data dir brings the cluster back'
complete -c kubesup -n "__fish_kubesup_using_subcommand help; and not __fish_seen_subcommand_from master worker token etcd backup restore status certs fetch install uninstall reset config completions version supervise manpage help" -f -a "status" -d 'Show every supervised component: state, pid, uptime, restarts, readiness, memory, CPU'
complete -c kubesup -n "__fish_kubesup_using_subcommand help; and not __fish_seen_subcommand_from master worker token etcd backup restore status certs fetch install uninstall reset config completions version supervise manpage help" -f -a "certs" -d 'Generate, check and rotate the cluster\'s certificates'
complete -c kubesup -n "__fish_kubesup_using_subcommand help; and not __fish_seen_subcommand_from master worker token etcd backup restore status certs fetch install uninstall reset config completions version supervise manpage help" -f -a "fetch" -d 'Download and verify every binary a node role needs, or make/load an air-gap bundle'
complete -c kubesup -n "__fish_kubesup_using_subcommand help; and not __fish_seen_subcommand_from master worker token etcd backup restore status certs fetch install uninstall reset config completions version supervise manpage help" -f -a "install" -d 'Write the config file and service unit for a manual install, then enable it'
complete -c kubesup -n "__fish_kubesup_using_subcommand help; and not __fish_seen_subcommand_from master worker token etcd backup restore status certs fetch install uninstall reset config completions version supervise manpage help" -f -a "uninstall" -d 'Remove what `kubesup install` wrote (the unit and config; not the data dir)'
complete -c kubesup -n "__fish_kubesup_using_subcommand help; and not __fish_seen_subcommand_from master worker token etcd backup restore status certs fetch install uninstall reset config completions version supervise manpage help" -f -a "reset" -d 'Stop kubesup and remove everything it created on this node: processes, mounts, interfaces, iptables chains, the data dir and the PKI'
complete -c kubesup -n "__fish_kubesup_using_subcommand help; and not __fish_seen_subcommand_from master worker token etcd backup restore status certs fetch install uninstall reset config completions version supervise manpage help" -f -a "config" -d 'Print the default config, or check a config file'
complete -c kubesup -n "__fish_kubesup_using_subcommand help; and not __fish_seen_subcommand_from master worker token etcd backup restore status certs fetch install uninstall reset config completions version supervise manpage help" -f -a "completions" -d 'Print shell completions'
complete -c kubesup -n "__fish_kubesup_using_subcommand help; and not __fish_seen_subcommand_from master worker token etcd backup restore status certs fetch install uninstall reset config completions version supervise manpage help" -f -a "version" -d 'Print kubesup\'s version and the default Kubernetes version'
complete -c kubesup -n "__fish_kubesup_using_subcommand help; and not __fish_seen_subcommand_from master worker token etcd backup restore status certs fetch install uninstall reset config completions version supervise manpage help" -f -a "supervise" -d 'Supervise the processes listed in a YAML file with kubesup\'s engine (restarts, backoff, process-group kills, status socket), without any Kubernetes component'
complete -c kubesup -n "__fish_kubesup_using_subcommand help; and not __fish_seen_subcommand_from master worker token etcd backup restore status certs fetch install uninstall reset config completions version supervise manpage help" -f -a "manpage" -d 'Write the man page (used to refresh contrib/kubesup.1)'
complete -c kubesup -n "__fish_kubesup_using_subcommand help; and not __fish_seen_subcommand_from master worker token etcd backup restore status certs fetch install uninstall reset config completions version supervise manpage help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c kubesup -n "__fish_kubesup_using_subcommand help; and __fish_seen_subcommand_from token" -f -a "create" -d 'Create a join token and print it (only ever shown once)'
complete -c kubesup -n "__fish_kubesup_using_subcommand help; and __fish_seen_subcommand_from token" -f -a "list" -d 'List tokens (id, expiry, description; never the secret)'
complete -c kubesup -n "__fish_kubesup_using_subcommand help; and __fish_seen_subcommand_from token" -f -a "delete" -d 'Delete a token by id'
complete -c kubesup -n "__fish_kubesup_using_subcommand help; and __fish_seen_subcommand_from etcd" -f -a "members" -d 'Table of the etcd members: name, ID, peer and client URLs, voter or learner, leader, health and db size, each member asked on its own client URLs'
complete -c kubesup -n "__fish_kubesup_using_subcommand help; and __fish_seen_subcommand_from etcd" -f -a "remove" -d 'Remove the member of a machine that is gone for good. Refused if the voters left would not have a healthy quorum, and for this machine\'s own member (use `kubesup reset` there)'
complete -c kubesup -n "__fish_kubesup_using_subcommand help; and __fish_seen_subcommand_from backup" -f -a "list" -d 'The backups in this master\'s backup dir: time, size, etcd revision'
complete -c kubesup -n "__fish_kubesup_using_subcommand help; and __fish_seen_subcommand_from certs" -f -a "generate" -d 'Create every missing CA, certificate, key and kubeconfig; re-issue leaves whose names changed or that are due for renewal. Never replaces a CA'
complete -c kubesup -n "__fish_kubesup_using_subcommand help; and __fish_seen_subcommand_from certs" -f -a "check" -d 'Print a table of every certificate; exit 1 if any expired or expires within 30 days'
complete -c kubesup -n "__fish_kubesup_using_subcommand help; and __fish_seen_subcommand_from certs" -f -a "rotate" -d 'Re-issue leaf certificates (never CAs)'
complete -c kubesup -n "__fish_kubesup_using_subcommand help; and __fish_seen_subcommand_from install" -f -a "master" -d 'Install the master service: /etc/kubesup/config.yaml from these flags, the systemd unit, then enable and start it (or say what to run without systemd)'
complete -c kubesup -n "__fish_kubesup_using_subcommand help; and __fish_seen_subcommand_from install" -f -a "worker" -d 'Install the worker service, with its join URL and token (kept in /etc/kubesup/token, 0600)'
complete -c kubesup -n "__fish_kubesup_using_subcommand help; and __fish_seen_subcommand_from config" -f -a "default" -d 'Print the default config file, with comments'
complete -c kubesup -n "__fish_kubesup_using_subcommand help; and __fish_seen_subcommand_from config" -f -a "check" -d 'Validate a config file; print every problem, one per line, and exit 1 if any'
