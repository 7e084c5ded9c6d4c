// Markup the marketing build writes and the server later fills in for visitors without
// JavaScript (an error after a plain form post, a preselected plan, an order's progress).
// Both sides call these functions, so the server finds exactly what the build wrote.
import { ADMIN_LINK_REFUSED, PROGRESS_STEPS, PROGRESS_TEXT, STOPPED_STEPS, fillText, shutdownText, type Progress, type ProgressKey } from './buyer-text.ts'

const HTML_ESCAPES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' }

export function escapeHtml (text: string): string {
  return text.replace(/[&<>"']/g, (c) => HTML_ESCAPES[c]!)
}

/** The form-wide message; hidden while empty. */
export function formAlert (message = ''): string {
  return `<p class="alert" id="form-alert" role="alert"${message === '' ? ' hidden' : ''}>${escapeHtml(message)}</p>`
}

/** The message under one field; hidden while empty. */
export function fieldError (field: string, message = ''): string {
  return `<p class="field-error" id="${field}-error"${message === '' ? ' hidden' : ''}>${escapeHtml(message)}</p>`
}

/** The attributes tying a control to its hint and error message. */
export function describedBy (field: string, invalid = false): string {
  return `${invalid ? 'aria-invalid="true" ' : ''}aria-describedby="${field}-hint ${field}-error"`
}

/** A text field's opening attributes, with what the visitor typed when the form came back. */
export function fieldValue (field: string, typed = ''): string {
  return `id="${field}" name="${field}"${typed === '' ? '' : ` value="${escapeHtml(typed)}"`}`
}

export function planInput (slug: string, checked: boolean): string {
  return `<input type="radio" name="plan" id="plan-${slug}" value="${slug}" required${checked ? ' checked' : ''}>`
}

export interface ProgressValues {
  url?: string
  fqdn?: string
  tenant?: string
  reason?: string
  grace?: string
  billing?: string
  /** DEPROVISION_GRACE_HOURS, for {until} (siteValues). */
  graceHours?: number
}

/** Where an order stopped: shown so even while the page still follows it (a retry may come). */
const STOPPED: readonly ProgressKey[] = ['failed', 'canceled', 'canceled_unpaid']

function stepClass (i: number, progress: Progress): string {
  if (i < progress.done) return 'done'
  if (i === progress.done && STOPPED.includes(progress.key)) return 'stopped'
  if (i === progress.done && !progress.final && progress.key !== 'checking') return 'current'
  return 'todo'
}

const STEP_STATE: Record<string, string> = { done: 'done', current: 'in progress', stopped: 'stopped', todo: 'not started yet' }

/** The welcome page's heading for one state of the order (its title follows it). */
export function welcomeHeading (key: ProgressKey = 'checking'): string {
  return `<h1 id="welcome-heading">${escapeHtml(PROGRESS_TEXT[key].heading)}</h1>`
}

/** The welcome page's progress block for one state of the order. */
export function progressBlock (progress: Progress, values: ProgressValues = {}): string {
  const text = PROGRESS_TEXT[progress.key as ProgressKey]
  const { graceHours, ...words } = values
  const filled = { ...words, until: shutdownText(progress.canceledAt, graceHours, values.grace) }
  const fill = (s: string): string => escapeHtml(fillText(s, filled as Record<string, string>))
  const steps = PROGRESS_STEPS.map((name, i) => {
    const cls = stepClass(i, progress)
    return `<li class="step ${cls}" data-step="${i}">${cls === 'stopped' ? STOPPED_STEPS[i] : name}<span class="visually-hidden"> (${STEP_STATE[cls]})</span></li>`
  }).join('')
  // To the server whenever one runs: a past-due or canceled CTF's still answers.
  const live = (progress.key === 'live' || progress.online === true) && values.url !== undefined
  // The number support asks for, in every state of a known order (not_found's id is the URL's).
  const order = progress.key !== 'not_found' && progress.key !== 'checking' && values.tenant !== undefined ? values.tenant : ''
  return `<div class="progress" id="progress" data-key="${progress.key}" data-final="${progress.final}">` +
    `<div aria-live="polite"><h2 id="progress-headline">${fill(text.headline)}</h2>` +
    `<p id="progress-detail">${fill(text.detail)}</p></div>` +
    `<ol class="steps" id="progress-steps">${steps}</ol>` +
    `<p id="live-link"${live ? '' : ' hidden'}><a class="button" href="${live ? escapeHtml(values.url!) : '#'}">Open your CTF</a></p>` +
    `<p class="small order-ref" id="order-ref"${order === '' ? ' hidden' : ''}>Order number: <code id="order-id">${escapeHtml(order)}</code></p>` +
    '</div>'
}

export interface AdminSection {
  /** Offered at all: the order is live and the link carries a valid token. */
  offered: boolean
  /** For visitors without script: the welcome link that opens the details on a page load. */
  noScriptHref?: string
  /** Why the details cannot be shown (not published yet, say). */
  message?: string
  credential?: { loginUrl: string, name: string, email: string, password: string }
}

/**
 * The welcome page's administrator sign-in section; the site script fills it in as well. Its
 * button works only with script, so the script shows it (and only while there is nothing
 * shown); without script the <noscript> link does its work. The details take focus once shown.
 */
export function adminSection (s: AdminSection = { offered: false }): string {
  const c = s.credential
  const attr = (shown: boolean): string => (shown ? '' : ' hidden')
  const noScript = s.noScriptHref !== undefined && c === undefined
    ? `<noscript><p><a href="${escapeHtml(s.noScriptHref)}">Show the details without JavaScript</a></p></noscript>`
    : ''
  // data-refused: what the script says when the API refuses the link (buyer-text.ts).
  return `<section class="section-tight" id="admin-details" aria-labelledby="admin-heading" data-refused="${escapeHtml(ADMIN_LINK_REFUSED)}"${attr(s.offered)}>
    <h2 id="admin-heading">Administrator sign-in</h2>
    <p>Your CTF's first administrator account was created during setup. Show its details once, then change the password after you sign in.</p>
    <button class="button button-ghost-dark" type="button" id="admin-show" hidden>Show administrator sign-in details</button>${noScript}
    <p id="admin-message" role="status"${attr(s.message !== undefined)}>${escapeHtml(s.message ?? '')}</p>
    <dl class="credentials" id="admin-credentials" tabindex="-1"${attr(c !== undefined)}>
      <dt>Sign-in page</dt><dd><a id="admin-login" href="${escapeHtml(c?.loginUrl ?? '#')}">${escapeHtml(c?.loginUrl ?? 'Sign-in page')}</a></dd>
      <dt>User name</dt><dd id="admin-name">${escapeHtml(c?.name ?? '')}</dd>
      <dt>Email</dt><dd id="admin-email">${escapeHtml(c?.email ?? '')}</dd>
      <dt>Password</dt><dd><code id="admin-password">${escapeHtml(c?.password ?? '')}</code></dd>
    </dl>
  </section>`
}

/** One way on from a message page. */
export interface MessageAction { href: string, label: string }

export interface Message { heading: string, text: string, actions?: readonly MessageAction[] }

/**
 * A page that says one thing to one visitor (an error on the way back from Checkout): its
 * heading, a sentence and ways on. The build writes the empty one into a page of the site's
 * layout, and the server swaps in the message (web/headers.ts sendMessagePage).
 */
export function messageBlock (m: Message = { heading: '', text: '' }): string {
  const actions = (m.actions ?? []).map((a, i) =>
    `<a class="button${i === 0 ? '' : ' button-ghost-dark'}" href="${escapeHtml(a.href)}">${escapeHtml(a.label)}</a>`).join(' ')
  return `<div class="wrap section narrow" id="message"><h1>${escapeHtml(m.heading)}</h1>` +
    `<p class="lead">${escapeHtml(m.text)}</p>${actions === '' ? '' : `<p class="actions">${actions}</p>`}</div>`
}
