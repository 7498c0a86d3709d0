"""supervisord's own sections for a daemon in a folder of its own (its socket, log, pid and
children's logs there), as the recipe test and the deploy benchmark run supervisord; each
adds its program sections (or an ``[include]`` of them) after it."""

SUPERVISORD_CONF = """\
[unix_http_server]
file={dir}/supervisor.sock

[supervisord]
logfile={dir}/supervisord.log
pidfile={dir}/supervisord.pid
childlogdir={dir}
nodaemon=true

[rpcinterface:supervisor]
supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface

[supervisorctl]
serverurl=unix://{dir}/supervisor.sock
"""
