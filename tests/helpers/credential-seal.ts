// What the tenant's server does with openssl (seal.sh), done in Node: seals a password to the
// tenant's public credential key, so route tests can serve a real envelope.
import { createCipheriv, createHmac, createPublicKey, diffieHellman, generateKeyPairSync, hkdfSync, randomBytes } from 'node:crypto'
import { credentialKeyPair } from '../../api/provisioning/cloud-init.ts'

export function sealCredential (secretKey: string, tenantId: string, password: string): string {
  const tenantPublic = createPublicKey(credentialKeyPair(secretKey, tenantId).publicKeyPem)
  const eph = generateKeyPairSync('x25519')
  const epk = Buffer.from(eph.publicKey.export({ format: 'jwk' }).x!, 'base64url')
  const shared = diffieHellman({ privateKey: eph.privateKey, publicKey: tenantPublic })
  const okm = Buffer.from(hkdfSync('sha256', shared, epk, 'ctfhive-admin-credential-v1', 64))
  const iv = randomBytes(16)
  const cipher = createCipheriv('aes-256-cbc', okm.subarray(0, 32), iv)
  const ct = Buffer.concat([cipher.update(password, 'utf8'), cipher.final()])
  const mac = createHmac('sha256', okm.subarray(32)).update(Buffer.concat([epk, iv, ct])).digest()
  return JSON.stringify({ v: 1, epk: epk.toString('base64'), iv: iv.toString('base64'), ct: ct.toString('base64'), mac: mac.toString('base64') })
}
