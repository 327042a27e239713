# kubesup %post: never enables or starts a service; on upgrade ($1 > 1), restarts the running ones.
if [ -d /run/systemd/system ]; then
	systemctl daemon-reload >/dev/null 2>&1 || :
	if [ "$1" -gt 1 ]; then
		systemctl try-restart kubesup-master.service kubesup-worker.service >/dev/null 2>&1 || :
	fi
fi
