// The docs' one script of their own, loaded after Material's bundle on every page. Material
// 8.2.5 opens its narrow-screen navigation drawer from a label over a hidden checkbox, which
// a keyboard cannot reach and which has no name: partials/header.html adds a real button,
// wired here. And a table wider than a phone scrolls sideways in a box a keyboard must be
// able to focus to scroll (WCAG 2.1.1): such boxes are made focusable and named.
'use strict'
;(function () {
  var root = document.documentElement
  var drawer = document.getElementById('__drawer')
  var button = document.querySelector('button[data-ctfhive-drawer]')
  var sidebar = document.querySelector('.md-sidebar--primary')

  // --- navigation drawer -------------------------------------------------------------

  if (drawer && button && sidebar) {
    sidebar.id = button.getAttribute('aria-controls')
    var label = document.querySelector('label.md-header__button[for="__drawer"]')
    if (label) label.hidden = true
    button.hidden = false
    // ctfhive.css hides the closed drawer from the Tab order only with this class: without
    // the script the label opens it, and a link in it slides it in when focused.
    root.classList.add('ctfhive-drawer')

    var sync = function () { button.setAttribute('aria-expanded', drawer.checked ? 'true' : 'false') }
    // click(), as Material toggles it, fires the change event both listen to.
    var close = function () { if (drawer.checked) drawer.click() }
    drawer.addEventListener('change', sync)
    sync()

    button.addEventListener('click', function () {
      drawer.click()
      if (!drawer.checked) return
      // Into the drawer, so the next Tab goes on through its links, not to what lies under it:
      // to the first link of the panel it shows (that of the current page's section, which
      // covers the top level on a narrow screen).
      var open = sidebar.querySelectorAll('.md-nav--primary .md-nav__toggle:checked ~ .md-nav')
      var panel = open.length > 0 ? open[open.length - 1] : sidebar
      var first = panel.querySelector('.md-nav__list a[href]')
      if (first) first.focus({ preventScroll: true })
    })
    document.addEventListener('keydown', function (e) {
      if (e.key !== 'Escape' || !drawer.checked) return
      var inside = sidebar.contains(document.activeElement)
      close()
      if (inside || document.activeElement === button) button.focus()
    })
    // Tabbing out of the open drawer closes it: what focus reaches lies under its overlay.
    document.addEventListener('focusin', function (e) {
      if (drawer.checked && !sidebar.contains(e.target) && e.target !== button) close()
    })
  }

  // --- tables that scroll sideways ---------------------------------------------------

  // The heading a table comes under names it; a second one there is numbered, as landmarks
  // must have names of their own.
  function headingOf (el) {
    for (var node = el; node && !node.classList.contains('md-typeset'); node = node.parentElement) {
      for (var prev = node.previousElementSibling; prev; prev = prev.previousElementSibling) {
        if (/^H[1-6]$/.test(prev.tagName)) return prev.textContent.replace(/¶\s*$/, '').trim()
      }
    }
    return ''
  }

  function labelTables () {
    var boxes = document.querySelectorAll('.md-typeset__scrollwrap')
    var seen = Object.create(null)
    for (var i = 0; i < boxes.length; i++) {
      var box = boxes[i]
      var heading = headingOf(box)
      seen[heading] = (seen[heading] || 0) + 1
      if (box.scrollWidth > box.clientWidth + 1) {
        var name = heading ? 'Table: ' + heading : 'Table'
        box.setAttribute('tabindex', '0')
        box.setAttribute('role', 'region')
        box.setAttribute('aria-label', seen[heading] > 1 ? name + ' (' + seen[heading] + ')' : name)
      } else if (box.hasAttribute('tabindex')) {
        // Fits again (a wider window): no stop in the Tab order that does nothing.
        box.removeAttribute('tabindex')
        box.removeAttribute('role')
        box.removeAttribute('aria-label')
      }
    }
  }

  // Material wraps the tables in their scrolling boxes on DOMContentLoaded, in a listener
  // added before this one; the load event comes after any layout change the page still makes.
  document.addEventListener('DOMContentLoaded', labelTables)
  window.addEventListener('load', labelTables)
  var pending = false
  window.addEventListener('resize', function () {
    if (pending) return
    pending = true
    window.requestAnimationFrame(function () { pending = false; labelTables() })
  })
})()
