/** The error a promise rejects with; a promise that fulfils fails the test instead. */
export async function caught (p: Promise<unknown>): Promise<Error> {
  try {
    await p
  } catch (err) {
    return err as Error
  }
  throw new Error('expected a rejection')
}
