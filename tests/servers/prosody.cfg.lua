-- A minimal Prosody for the xmpp sink's tests: the virtual host
-- "localhost" for test users (c2s without TLS, loopback only), and
-- external components (XEP-0114) for ewsgw: presence.localhost,
-- tlspresence.localhost, and two that tests fail to reach on purpose.  Components connect on the plain component
-- port or, with direct TLS, on the multiplexed TLS port.
-- tests/integration/presence_servers.py fills in the @NAME@ placeholders.

pidfile = "@PID@"
data_path = "@DATA@"
daemonize = false
log = { debug = "@LOG@"; info = "*console" }

interfaces = { "127.0.0.1" }
local_interfaces = { "127.0.0.1" }
c2s_ports = { @C2S_PORT@ }
component_ports = { @COMPONENT_PORT@ }
component_interfaces = { "127.0.0.1" }
ssl_ports = { @TLS_PORT@ }
ssl_interfaces = { "127.0.0.1" }
s2s_ports = { }
c2s_direct_tls_ports = { }
s2s_direct_tls_ports = { }
http_ports = { }
https_ports = { }

ssl = { certificate = "@CERT@"; key = "@KEY@" }

modules_enabled = {
	"roster"; "saslauth"; "tls"; "disco"; "ping";
	"net_multiplex";
}
modules_disabled = { "s2s"; "offline"; "posix" }

authentication = "internal_plain"
storage = "internal"
c2s_require_encryption = false
allow_unencrypted_plain_auth = true
allow_registration = false

VirtualHost "localhost"

Component "presence.localhost"
	component_secret = "@SECRET@"

Component "tlspresence.localhost"
	component_secret = "@SECRET@"

Component "badsecret.localhost"
	component_secret = "@SECRET@"

Component "untrusted.localhost"
	component_secret = "@SECRET@"
