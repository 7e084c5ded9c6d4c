// The baseline: a bare Fastify POST route that parses the same JSON body and answers
// {ok:true}. Run as its own process like the app, so both share the machine the same way.
import Fastify from 'fastify'

const app = Fastify({ logger: false, bodyLimit: 1024 * 1024 })
app.post('/webhook', async (_request, reply) => reply.send({ ok: true }))
await app.listen({ host: '127.0.0.1', port: 0 })
const address = app.server.address()
process.stdout.write(`listening ${typeof address === 'object' && address !== null ? address.port : 0}\n`)
process.on('SIGTERM', () => { void app.close().then(() => process.exit(0)) })
