# kubesup %preun: on removal ($1 = 0), stops and disables the services; not on upgrade.
if [ "$1" -eq 0 ] && [ -d /run/systemd/system ]; then
	systemctl disable --now kubesup-master.service kubesup-worker.service >/dev/null 2>&1 || :
fi
