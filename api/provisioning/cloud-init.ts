// The cloud-config that turns a fresh Debian 12 Linode into the tenant's CTFd: Docker
// (docker.io, docker-compose v1) runs CTFd, MariaDB and Redis; Caddy terminates TLS.
//
// Secrets: user_data is readable from inside the server and is stored by us and by Linode,
// so it holds none. At first boot the server makes the database passwords, CTFd's SECRET_KEY
// and the admin password with `openssl rand`. The admin password reaches the buyer this way:
// - the control plane derives a per-tenant X25519 key pair from SECRET_KEY and the tenant id
//   (credentialKeyPair) and puts only the PUBLIC key in user_data;
// - the server seals the password to that key (ephemeral X25519, HKDF-SHA256, AES-256-CBC +
//   HMAC-SHA256, openssl only), writes the envelope, then uses the password in CTFd's setup;
//   the clear copy is deleted once setup is done;
// - Caddy serves the envelope at CREDENTIAL_PATH; it is useless without the private key, so
//   the control plane may fetch and store it as is. The signed welcome link's handler opens it
//   (openCredentialEnvelope) and shows the password to the buyer; it is never logged or stored
//   in clear on our side.
// Limits: whoever holds SECRET_KEY can open every envelope (as they can forge welcome links);
// rotating SECRET_KEY orphans envelopes made before; the envelope stays published (ciphertext
// only), so the buyer should still change the password after the first login.
//
// Setup race: CTFd listens on 127.0.0.1:8000 only; setup is submitted from inside the server
// (GET /setup, nonce, POST /setup) and only then is Caddy given the site, so no stranger can
// claim a fresh instance. An nftables table admits only 80 and 443 (no SSH: the root password
// is random and kept nowhere; Linode's Lish console is the way in), and drops packets from
// outside addressed to 127.0.0.0/8, which Docker would otherwise forward to CTFd
// (moby/moby#45610). The Linode Cloud Firewall in front (linode-firewall.ts) admits the same.
//
// Bootstrap: a systemd unit runs bootstrap.sh (re-runnable) until it succeeds, across reboots,
// so a failed image pull or a network glitch at first boot does not leave a dead server.
import { createDecipheriv, createHmac, createPrivateKey, createPublicKey, diffieHellman, hkdfSync, timingSafeEqual, type KeyObject } from 'node:crypto'
import { ExecutorError, type ServerSpec } from './executor.ts'
import { HOSTNAME } from '../tenants/address.ts'

export const CTFD_IMAGE = 'ctfd/ctfd:3.8.7'
export const CREDENTIAL_PATH = '/.well-known/ctfhive/admin-credential.json'
const HKDF_INFO = 'ctfhive-admin-credential-v1'
const STAGING_CA = 'https://acme-staging-v02.api.letsencrypt.org/directory'
// DER prefix of a PKCS#8 X25519 private key; the 32 raw key bytes follow.
const X25519_PKCS8_PREFIX = Buffer.from('302e020100300506032b656e04220420', 'hex')

export interface CloudConfigInput {
  fqdn: string
  tenantName: string
  adminEmail: string
  /** PEM (SPKI) X25519 key the admin password is sealed to: credentialKeyPair().publicKeyPem. */
  credentialPublicKey: string
  /** CTFd user name of the first admin (not an email address). */
  adminName?: string
  /** A pinned tag, never `latest`. */
  ctfdImage?: string
  /** Use Let's Encrypt's staging CA (tests and rehearsals: 50 certificates a week is the real limit). */
  acmeStaging?: boolean
  acmeEmail?: string
  userMode?: 'users' | 'teams'
}

export interface CredentialKeyPair { publicKeyPem: string, privateKey: KeyObject }

export function credentialKeyPair (secretKey: string, tenantId: string): CredentialKeyPair {
  const seed = createHmac('sha256', secretKey).update(`${HKDF_INFO}:${tenantId}`).digest()
  const privateKey = createPrivateKey({ key: Buffer.concat([X25519_PKCS8_PREFIX, seed]), format: 'der', type: 'pkcs8' })
  const publicKeyPem = createPublicKey(privateKey).export({ type: 'spki', format: 'pem' }).toString()
  return { publicKeyPem, privateKey }
}

/** Opens an envelope made by the server's seal.sh; throws when it was not made for this tenant. */
export function openCredentialEnvelope (secretKey: string, tenantId: string, envelope: string): string {
  const env = JSON.parse(envelope) as Record<string, unknown>
  const field = (k: string): Buffer => {
    if (typeof env[k] !== 'string') throw new Error(`credential envelope: missing ${k}`)
    return Buffer.from(env[k], 'base64')
  }
  if (env.v !== 1) throw new Error('credential envelope: unknown version')
  const [epk, iv, ct, mac] = [field('epk'), field('iv'), field('ct'), field('mac')]
  if (epk.length !== 32 || iv.length !== 16 || mac.length !== 32) throw new Error('credential envelope: malformed')
  const { privateKey } = credentialKeyPair(secretKey, tenantId)
  const peer = createPublicKey({ key: { kty: 'OKP', crv: 'X25519', x: epk.toString('base64url') }, format: 'jwk' })
  const shared = diffieHellman({ privateKey, publicKey: peer })
  const okm = Buffer.from(hkdfSync('sha256', shared, epk, HKDF_INFO, 64))
  const expected = createHmac('sha256', okm.subarray(32)).update(Buffer.concat([epk, iv, ct])).digest()
  if (!timingSafeEqual(expected, mac)) throw new Error('credential envelope: not sealed for this tenant')
  const decipher = createDecipheriv('aes-256-cbc', okm.subarray(0, 32), iv)
  return Buffer.concat([decipher.update(ct), decipher.final()]).toString('utf8')
}

const IMAGE = /^[a-z0-9][a-z0-9./-]*:[A-Za-z0-9._-]+$/

// ASCII-only JSON: YAML 1.1 (PyYAML, cloud-init) treats U+0085/U+2028/U+2029 as line breaks,
// which would let a tenant name end a block scalar early.
function asciiJson (value: unknown): string {
  return JSON.stringify(value).replace(/[\u007f-\uffff]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`)
}

function file (path: string, permissions: string, content: string): string {
  const body = content.replace(/\n$/, '').split('\n').map((l) => l === '' ? '' : `      ${l}`).join('\n')
  return `  - path: ${path}\n    permissions: '${permissions}'\n    content: |\n${body}\n`
}

function composeFile (fqdn: string, image: string): string {
  return `version: '2.4'
services:
  ctfd:
    image: ${image}
    restart: always
    ports: ['127.0.0.1:8000:8000']
    environment:
      UPLOAD_FOLDER: /var/uploads
      LOG_FOLDER: /var/log/CTFd
      ACCESS_LOG: '-'
      ERROR_LOG: '-'
      WORKERS: '2'
      REVERSE_PROXY: 'true'
      TRUSTED_HOSTS: ${fqdn}
      SECRET_KEY: \${CTFD_SECRET_KEY}
      DATABASE_URL: mysql+pymysql://ctfd:\${DB_PASSWORD}@db/ctfd
      REDIS_URL: redis://cache:6379
    volumes: ['ctfd-logs:/var/log/CTFd', 'ctfd-uploads:/var/uploads']
    depends_on: [db, cache]
    networks: [default, internal]
  db:
    image: mariadb:10.11
    restart: always
    command: [mysqld, --character-set-server=utf8mb4, --collation-server=utf8mb4_unicode_ci, --wait_timeout=28800, --log-warnings=0]
    environment:
      MARIADB_ROOT_PASSWORD: \${DB_ROOT_PASSWORD}
      MARIADB_USER: ctfd
      MARIADB_PASSWORD: \${DB_PASSWORD}
      MARIADB_DATABASE: ctfd
      MARIADB_AUTO_UPGRADE: '1'
    volumes: ['db-data:/var/lib/mysql']
    networks: [internal]
  cache:
    image: redis:7.2
    restart: always
    volumes: ['cache-data:/data']
    networks: [internal]
volumes: {ctfd-logs: {}, ctfd-uploads: {}, db-data: {}, cache-data: {}}
networks:
  default: {}
  internal: {internal: true}
`
}

function caddyfile (fqdn: string, staging: boolean, email: string | undefined): string {
  const globals = [staging ? `\tacme_ca ${STAGING_CA}` : '', email !== undefined ? `\temail ${email}` : ''].filter(Boolean)
  return `${globals.length > 0 ? `{\n${globals.join('\n')}\n}\n` : ''}${fqdn} {
\tencode gzip
\thandle_path /.well-known/ctfhive/* {
\t\troot * /var/lib/ctfhive/public
\t\tfile_server
\t}
\thandle {
\t\treverse_proxy 127.0.0.1:8000
\t}
}
`
}

const FIREWALL = `table inet ctfhive
delete table inet ctfhive
table inet ctfhive {
  chain prerouting {
    type filter hook prerouting priority raw; policy accept;
    iif != lo ip daddr 127.0.0.0/8 drop
  }
  chain input {
    type filter hook input priority 0; policy drop;
    iif lo accept
    ct state established,related accept
    iifname "docker0" accept
    iifname "br-*" accept
    meta l4proto { icmp, ipv6-icmp } accept
    tcp dport { 80, 443 } accept
    udp dport { 68, 443, 546 } accept
  }
}
`

const FIREWALL_UNIT = `[Unit]
Description=CTFHive host firewall (80 and 443 only)
[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/usr/sbin/nft -f /etc/ctfhive/firewall.nft
[Install]
WantedBy=multi-user.target
`

// Runs the bootstrap until it succeeds (a failed pull retries a minute later, also after a
// reboot), then never again: bootstrap.done.
const BOOTSTRAP_UNIT = `[Unit]
Description=CTFHive first-boot setup (until it succeeds)
Wants=network-online.target
After=network-online.target
ConditionPathExists=!/etc/ctfhive/bootstrap.done
StartLimitIntervalSec=0
[Service]
Type=oneshot
ExecStart=/opt/ctfhive/bootstrap.sh
Restart=on-failure
RestartSec=60
[Install]
WantedBy=multi-user.target
`

// Security updates of the host, daily (the unattended-upgrades package's Debian defaults).
const AUTO_UPGRADES = `APT::Periodic::Update-Package-Lists "1";
APT::Periodic::Unattended-Upgrade "1";
`

const PACKAGES = ['docker.io', 'docker-compose', 'caddy', 'openssl', 'nftables', 'python3', 'ca-certificates', 'unattended-upgrades']

const SEAL = `#!/bin/sh
# seal.sh PUBKEY < secret > envelope: X25519 + HKDF-SHA256 + AES-256-CBC + HMAC-SHA256.
set -eu
d=$(mktemp -d); trap 'rm -rf "$d"' EXIT
hex () { od -An -v -tx1 | tr -d ' \\n'; }
b64 () { base64 -w0 < "$1"; }
openssl genpkey -algorithm X25519 -out "$d/e.pem" 2>/dev/null
openssl pkey -in "$d/e.pem" -pubout -outform DER | tail -c 32 > "$d/epk"
openssl pkeyutl -derive -inkey "$d/e.pem" -peerkey "$1" -out "$d/z"
okm=$(openssl kdf -keylen 64 -kdfopt digest:SHA256 -kdfopt "hexkey:$(hex < "$d/z")" \\
  -kdfopt "hexsalt:$(hex < "$d/epk")" -kdfopt info:${HKDF_INFO} HKDF | tr -d ':\\n')
ek=$(echo "$okm" | cut -c1-64); mk=$(echo "$okm" | cut -c65-128)
openssl rand -out "$d/iv" 16
openssl enc -aes-256-cbc -K "$ek" -iv "$(hex < "$d/iv")" -out "$d/ct"
cat "$d/epk" "$d/iv" "$d/ct" | openssl dgst -sha256 -mac HMAC -macopt "hexkey:$mk" -binary > "$d/mac"
printf '{"v":1,"epk":"%s","iv":"%s","ct":"%s","mac":"%s"}\\n' "$(b64 "$d/epk")" "$(b64 "$d/iv")" "$(b64 "$d/ct")" "$(b64 "$d/mac")"
`

const SETUP = `#!/usr/bin/env python3
# ctfd-setup.py TENANT_JSON PASSWORD_FILE [BASE_URL]: waits for CTFd, then submits /setup.
import json, re, sys, time, urllib.error, urllib.parse, urllib.request
tenant = json.load(open(sys.argv[1]))
password = open(sys.argv[2]).read().strip()
base = sys.argv[3] if len(sys.argv) > 3 else 'http://127.0.0.1:8000'
host = tenant['fqdn']
class Stay(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None
opener = urllib.request.build_opener(Stay)
def call(path, form=None, cookie=''):
    headers = {'Host': host, 'X-Forwarded-Host': host, 'X-Forwarded-Proto': 'https'}
    data = None
    if cookie:
        headers['Cookie'] = cookie
    if form is not None:
        data = urllib.parse.urlencode(form).encode()
        headers['Content-Type'] = 'application/x-www-form-urlencoded'
    try:
        r = opener.open(urllib.request.Request(base + path, data=data, headers=headers), timeout=30)
    except urllib.error.HTTPError as e:
        r = e
    return r.getcode(), r.headers, r.read().decode('utf-8', 'replace')
deadline = time.time() + float(tenant.get('wait_s', 1200))
while True:
    try:
        if call('/healthcheck')[0] == 200:
            break
    except Exception:
        pass
    if time.time() > deadline:
        sys.exit('ctfd-setup: CTFd never became healthy')
    time.sleep(5)
NONCE = [r'name="nonce"[^>]*value="([^"]+)"', r'value="([^"]+)"[^>]*name="nonce"', r'csrfNonce["\\']?\\s*:\\s*"([^"]+)"']
for attempt in range(5):
    status, headers, body = call('/setup')
    if status in (301, 302, 303):
        print('ctfd-setup: setup is done')
        sys.exit(0)
    cookie = '; '.join(c.split(';', 1)[0] for c in headers.get_all('Set-Cookie') or [])
    found = [m for m in (re.search(p, body) for p in NONCE) if m]
    if status == 200 and found:
        form = {'nonce': found[0].group(1), 'ctf_name': tenant['ctf_name'], 'ctf_description': '',
                'user_mode': tenant['user_mode'], 'name': tenant['admin_name'], 'email': tenant['admin_email'],
                'password': password, 'ctf_theme': 'core'}
        status, headers, body = call('/setup', form, cookie)
        errors = re.findall(r'alert-danger[^>]*>\\s*([^<]{1,200})', body)
        print('ctfd-setup: POST /setup answered %d %s' % (status, errors[:3]))
    time.sleep(2)
sys.exit('ctfd-setup: could not complete setup')
`

const BOOTSTRAP = `#!/bin/sh
# First boot (re-runnable): secrets are made here, never in user_data, and never echoed.
set -eu
umask 077
C=/etc/ctfhive P=/opt/ctfhive PUB=/var/lib/ctfhive/public
# cloud-init's package step may have failed (network): install what is missing.
dpkg -s ${PACKAGES.join(' ')} >/dev/null 2>&1 || { apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y ${PACKAGES.join(' ')}; }
systemctl stop caddy || true
systemctl daemon-reload && systemctl enable --now ctfhive-firewall.service
install -d -m 0755 /var/lib/ctfhive "$PUB"
if [ ! -s "$P/.env" ]; then
  printf 'CTFD_SECRET_KEY=%s\\nDB_PASSWORD=%s\\nDB_ROOT_PASSWORD=%s\\n' \\
    "$(openssl rand -hex 32)" "$(openssl rand -hex 24)" "$(openssl rand -hex 24)" > "$P/.env.new"
  mv "$P/.env.new" "$P/.env"
fi
systemctl enable --now docker
cd "$P"
up=0
for i in 1 2 3 4 5; do
  if docker-compose up -d; then up=1; break; fi
  sleep 30
done
# Fail, and the unit runs all this again: no waiting on a CTFd that never started.
[ "$up" = 1 ] || { echo 'ctfhive: docker-compose up failed' >&2; exit 1; }
# admin.pass exists only once its envelope is published (and on disk): a run cut off anywhere
# before that seals admin.pass.new again, so CTFd never gets a password the buyer cannot open.
# One command a line: set -e does not stop on a failure left of &&.
if [ ! -e "$C/setup.done" ]; then
  if [ ! -s "$C/admin.pass" ]; then
    if [ ! -s "$C/admin.pass.new" ]; then
      openssl rand -base64 24 | tr -d '\\n' > "$C/admin.pass.new"
      # tr succeeds even when openssl fails: stop rather than seal an empty password.
      [ -s "$C/admin.pass.new" ]
    fi
    "$P/seal.sh" "$C/credential.pub.pem" < "$C/admin.pass.new" > "$PUB/envelope.new"
    chmod 0644 "$PUB/envelope.new"
    mv "$PUB/envelope.new" "$PUB/admin-credential.json"
    # A power cut must not keep the rename below without the envelope it vouches for.
    sync
    mv "$C/admin.pass.new" "$C/admin.pass"
  fi
  python3 "$P/ctfd-setup.py" "$C/tenant.json" "$C/admin.pass"
  touch "$C/setup.done"
fi
# Outside the if: a run cut off between setup.done and here still deletes the clear password.
rm -f "$C/admin.pass" "$C/admin.pass.new"
# Only now does the instance face the Internet.
install -m 0644 "$C/Caddyfile" /etc/caddy/Caddyfile
systemctl enable caddy && systemctl restart caddy
touch "$C/bootstrap.done"
echo 'ctfhive: bootstrap done'
`

/** The CTF's name as CTFd gets it: well-formed, trimmed, at most 128 characters (code points). */
export function ctfName (name: string): string {
  return Array.from(name.toWellFormed().trim()).slice(0, 128).join('').trim()
}

export function buildCloudConfig (input: CloudConfigInput): string {
  const fqdn = input.fqdn.toLowerCase()
  if (!HOSTNAME.test(fqdn)) throw new Error(`cloud-init: invalid FQDN ${JSON.stringify(input.fqdn)}`)
  const image = input.ctfdImage ?? CTFD_IMAGE
  if (!IMAGE.test(image) || image.endsWith(':latest')) throw new Error(`cloud-init: CTFd image must be a pinned tag, got ${JSON.stringify(image)}`)
  if (!/^[^\s@]+@[^\s@]+\.[^\s@]+$/.test(input.adminEmail)) throw new Error('cloud-init: invalid admin email')
  if (input.acmeEmail !== undefined && !/^[^\s@{}]+@[^\s@{}]+\.[^\s@{}]+$/.test(input.acmeEmail)) throw new Error('cloud-init: invalid ACME email')
  const pub = input.credentialPublicKey.trim()
  if (!/^-----BEGIN PUBLIC KEY-----\n[A-Za-z0-9+/=\n]+\n-----END PUBLIC KEY-----$/.test(pub)) throw new Error('cloud-init: credentialPublicKey must be a PEM public key')
  const tenant = {
    fqdn,
    // By code points, and no lone surrogate: Python's urlencode refuses one, and setup with it.
    ctf_name: ctfName(input.tenantName) || fqdn,
    admin_name: input.adminName ?? 'admin',
    admin_email: input.adminEmail,
    user_mode: input.userMode ?? 'users'
  }
  return '#cloud-config\n' +
    'package_update: true\n' +
    `packages: [${PACKAGES.join(', ')}]\n` +
    'ssh_pwauth: false\n' +
    'write_files:\n' +
    file('/etc/ctfhive/tenant.json', '0644', asciiJson(tenant)) +
    file('/etc/ctfhive/credential.pub.pem', '0644', pub) +
    file('/etc/ctfhive/Caddyfile', '0644', caddyfile(fqdn, input.acmeStaging === true, input.acmeEmail)) +
    file('/etc/ctfhive/firewall.nft', '0644', FIREWALL) +
    file('/etc/systemd/system/ctfhive-firewall.service', '0644', FIREWALL_UNIT) +
    file('/opt/ctfhive/docker-compose.yml', '0644', composeFile(fqdn, image)) +
    file('/opt/ctfhive/seal.sh', '0755', SEAL) +
    file('/opt/ctfhive/ctfd-setup.py', '0755', SETUP) +
    file('/opt/ctfhive/bootstrap.sh', '0755', BOOTSTRAP) +
    file('/etc/systemd/system/ctfhive-bootstrap.service', '0644', BOOTSTRAP_UNIT) +
    file('/etc/apt/apt.conf.d/20auto-upgrades', '0644', AUTO_UPGRADES) +
    // --no-block: runcmd runs inside cloud-final, which must not wait for the unit.
    'runcmd:\n  - [systemctl, daemon-reload]\n  - [systemctl, enable, ctfhive-bootstrap.service]\n  - [systemctl, start, --no-block, ctfhive-bootstrap.service]\n'
}

export function encodeUserData (text: string): string {
  return Buffer.from(text, 'utf8').toString('base64')
}

/** The LinodeExecutor's `userData` option: a tenant's spec → base64 cloud-config. */
export function userDataBuilder (secretKey: string, opts: Pick<CloudConfigInput, 'ctfdImage' | 'acmeStaging' | 'acmeEmail'> = {}): (spec: ServerSpec) => string {
  return (spec) => {
    try {
      return encodeUserData(buildCloudConfig({
        ...opts,
        fqdn: spec.fqdn,
        tenantName: spec.tenantName,
        adminEmail: spec.adminEmail,
        credentialPublicKey: credentialKeyPair(secretKey, spec.tenantId).publicKeyPem
      }))
    } catch (err) {
      // The same tenant and settings fail the same way at every attempt: no retry helps.
      throw new ExecutorError((err as Error).message, { retryable: false, cause: err })
    }
  }
}
