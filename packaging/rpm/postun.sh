# kubesup %postun: on removal ($1 = 0), the data dir is removed only with KUBESUP_PURGE_DATA=yes
# (rpm has no purge; /etc/kubesup/config.yaml is kept as .rpmsave when changed).
if [ "$1" -eq 0 ]; then
	rm -f /etc/kubesup/token /etc/kubesup/installed.json
	if [ "${KUBESUP_PURGE_DATA:-}" = yes ]; then
		rm -rf /var/lib/kubesup
	fi
	if [ -d /run/systemd/system ]; then
		systemctl daemon-reload >/dev/null 2>&1 || :
	fi
fi
