/* <drukte-widget zone="mechelen-bruul" lang="nl" theme="light"></drukte-widget>
   A small web component that shows the Drukte widget of a zone, served by the Drukte API this script came
   from, in a sandbox-free iframe (the widget is a page of its own: live, accessible, reconnecting by itself). */
"use strict";
(function () {
  const script = document.currentScript;
  const origin = script ? new URL(script.src, location.href).origin : location.origin;

  class DrukteWidget extends HTMLElement {
    static get observedAttributes() { return ["zone", "lang", "theme", "title"]; }
    constructor() {
      super();
      this.attachShadow({mode: "open"});
    }
    connectedCallback() { this.render(); }
    attributeChangedCallback() { if (this.isConnected) this.render(); }
    render() {
      const zone = this.getAttribute("zone") || "";
      const lang = ["nl", "fr", "en"].includes(this.getAttribute("lang")) ? this.getAttribute("lang") : "nl";
      const theme = this.getAttribute("theme") === "dark" ? "dark" : "light";
      const frame = document.createElement("iframe");
      frame.src = `${origin}/widget/${encodeURIComponent(zone)}?lang=${lang}&theme=${theme}`;
      frame.title = this.getAttribute("title") || `Drukte ${zone}`;
      frame.loading = "lazy";
      frame.referrerPolicy = "no-referrer";
      frame.style.cssText = "border:0;width:100%;height:100%;display:block;border-radius:12px";
      const style = document.createElement("style");
      style.textContent = ":host{display:block;min-height:320px;aspect-ratio:16/9}";
      this.shadowRoot.replaceChildren(style, frame);
    }
  }
  if (!customElements.get("drukte-widget")) customElements.define("drukte-widget", DrukteWidget);
})();
