// What the console uses to show a workflow's README (its package's `description`, Markdown as
// DIZEST shows it): markdown-it with raw HTML off, its output sanitized by DOMPurify into a
// DocumentFragment (built by scripts/build-vendor into static/vendor/markdown.js).
import MarkdownIt from "markdown-it";
import DOMPurify from "dompurify";

// `html: false`: HTML in the text is shown as text; `breaks`: a line break stays one, as the
// plain-text description before it showed; links only of the schemes markdown-it allows.
const md = new MarkdownIt({ html: false, linkify: true, breaks: true });

// A link opens in a new tab and tells the target nothing of the console.
DOMPurify.addHook("afterSanitizeAttributes", (node) => {
  if (node.tagName === "A") {
    node.setAttribute("target", "_blank");
    node.setAttribute("rel", "noopener noreferrer nofollow");
  }
});

// Another user's Markdown as DOM nodes, never a string handed to innerHTML by the caller.
export function renderMarkdown(text) {
  return DOMPurify.sanitize(md.render(String(text)), {
    RETURN_DOM_FRAGMENT: true,
    FORBID_TAGS: ["style", "form", "input", "button", "textarea", "select"],
    FORBID_ATTR: ["style"],
  });
}
