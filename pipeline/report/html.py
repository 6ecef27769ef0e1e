"""``report.html``: one self-contained page (inline CSS, PNGs as data URIs, no scripts,
no network), readable offline in any browser."""

from __future__ import annotations

import base64
import html
from typing import Any

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,Arial,sans-serif;margin:0;background:#f4f5f7;color:#1d232b}
header{background:#1f3a5f;color:#fff;padding:14px 24px}
header h1{margin:0;font-size:22px} header p{margin:4px 0 0;font-size:13px;opacity:.85}
.notice{background:#fff4ce;border-left:5px solid #e0a800;padding:8px 24px;font-size:13px}
main{padding:16px 24px;max-width:1300px}
section{background:#fff;border-radius:6px;padding:12px 16px;margin-bottom:14px;box-shadow:0 1px 2px rgba(0,0,0,.08)}
h2{font-size:17px;margin:0 0 8px;color:#1f3a5f}
.cards{display:flex;flex-wrap:wrap;gap:12px}
.card{flex:1 1 220px;border:1px solid #d8dde5;border-radius:6px;padding:10px}
.card .big{font-size:26px;font-weight:700} .card .sub{font-size:12px;color:#555}
.hi{color:#b00020} .ok{color:#176c2f}
table{border-collapse:collapse;width:100%;font-size:13px}
th,td{border-bottom:1px solid #e3e6ea;padding:4px 6px;text-align:left;vertical-align:top}
th{background:#eef1f5} tr.inv td{background:#fff0f0}
.imgs{display:flex;flex-wrap:wrap;gap:16px;align-items:flex-start}
figure{margin:0} figcaption{font-size:12px;color:#555;max-width:520px}
img{max-width:100%;border:1px solid #ccc;background:#000}
.prov{font-size:11px;padding:1px 5px;border-radius:8px;background:#e8eef7;color:#234}
.prov.estimated{background:#fff1d6;color:#7a4b00} .prov.not_assessable{background:#f1e3e3;color:#7a1f1f}
.prov.entered{background:#e3f1e6;color:#1f5a2c}
ul{margin:4px 0 4px 18px;padding:0} li{margin:2px 0;font-size:13px}
code{font-size:12px}
"""


def _e(x: Any) -> str:
    return html.escape("" if x is None else str(x))


def _prov(p: str | None) -> str:
    p = p or "missing"
    return f'<span class="prov {_e(p)}">{_e(p.replace("_", " "))}</span>'


def _img(png: bytes | None, alt: str, caption: str) -> str:
    if not png:
        return f"<figure><figcaption>{_e(caption)} (not available)</figcaption></figure>"
    b64 = base64.b64encode(png).decode("ascii")
    return f'<figure><img alt="{_e(alt)}" src="data:image/png;base64,{b64}"><figcaption>{_e(caption)}</figcaption></figure>'


def _fmt(v: Any, unit: str = "", nd: int = 1) -> str:
    if v is None:
        return "–"
    if isinstance(v, float):
        return f"{v:.{nd}f}{unit}"
    return f"{v}{unit}"


def _score_line(scores: dict[str, Any], key: str, label: str, band_key: str | None = None) -> str:
    tot = scores.get(f"{key}_total")
    rng = scores.get(f"{key}_total_range")
    val = _e(tot) if tot is not None else (f"{_e(rng[0])}–{_e(rng[1])} (partial)" if rng else "–")
    band = scores.get(band_key) if band_key else None
    return f"<tr><td>{_e(label)}</td><td>{val}</td><td>{_e(band) if band else '–'}</td></tr>"


def render_html(report: dict[str, Any], sagittal: bytes | None, axial: bytes | None) -> str:
    """Render the report page from the report document and its two key images."""
    st = report.get("study", {})
    sm = report.get("summary", {})
    sc = report.get("scores", {}) or {}
    e = report.get("escc", {})
    parts: list[str] = []
    parts.append(
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"<title>spinemet report</title><style>{_CSS}</style></head><body>"
    )
    desc = ", ".join(
        _e(x)
        for x in (
            st.get("modality"),
            st.get("series_description"),
            st.get("input_kind"),
            st.get("segmenter"),
        )
        if x
    )
    parts.append(f"<header><h1>spinemet: metastatic spine assessment</h1><p>{desc}</p></header>")
    parts.append(
        f"<div class='notice'><b>Research use only.</b> {_e(report.get('notice', ''))}</div><main>"
    )
    if not report.get("assessable", False):
        parts.append("<section><h2>The study could not be assessed</h2><ul>")
        parts += [f"<li>{_e(m)}</li>" for m in report.get("messages", [])]
        parts.append("</ul></section></main></body></html>")
        return "".join(parts)

    # key findings
    grade = e.get("worst_grade")
    hi_grade = grade in ("2", "3")
    sins_val = sc.get("sins_total")
    sins_rng = sc.get("sins_total_range")
    sins_txt = (
        _e(sins_val)
        if sins_val is not None
        else (f"{sins_rng[0]}–{sins_rng[1]}" if sins_rng else "–")
    )
    rec = sc.get("recommendation")
    parts.append("<section><h2>Key findings</h2><div class='cards'>")
    parts.append(
        f"<div class='card'><div class='sub'>Levels in view</div><div class='big'>{_e(', '.join(report.get('levels', [])))}</div>"
        f"<div class='sub'>involved: {_e(', '.join(sm.get('involved_levels', [])) or 'none')}"
        f" ({_e(sm.get('involved_count', 0))} vertebrae; segments: "
        f"{_e('; '.join('-'.join([s[0], s[-1]]) if len(s) > 1 else s[0] for s in sm.get('segments', [])) or 'none')})</div></div>"
    )
    parts.append(
        f"<div class='card'><div class='sub'>Epidural compression (Bilsky), worst level</div>"
        f"<div class='big {'hi' if hi_grade else ('ok' if grade is not None else '')}'>{_e(grade if grade is not None else 'n/a')}"
        f"{' at ' + _e(e.get('worst_level')) if e.get('worst_level') else ''}</div>"
        f"<div class='sub'>{_prov(e.get('provenance'))} {_e(e.get('why'))}</div></div>"
    )
    parts.append(
        f"<div class='card'><div class='sub'>SINS (index vertebra {_e(sm.get('index_level') or '–')})</div>"
        f"<div class='big'>{sins_txt}</div><div class='sub'>category: {_e(sc.get('sins_category') or 'undetermined without the missing inputs')}</div></div>"
    )
    parts.append(
        f"<div class='card'><div class='sub'>NOMS suggestion</div><div class='big'>{_e(rec or '–')}</div>"
        f"<div class='sub'>{'needs histology and systemic status' if not rec else ''}</div></div>"
    )
    parts.append("</div></section>")

    # images
    wl = e.get("worst_level")
    parts.append("<section><h2>Images</h2><div class='imgs'>")
    parts.append(
        _img(
            sagittal,
            "sagittal view",
            "Sagittal reformat through the column's midline (anterior left, head up). Levels named; "
            "involved levels in red; * = worst compression. Overlay: red lytic, blue blastic, orange epidural tumour.",
        )
    )
    parts.append(
        _img(
            axial,
            "axial view at worst compression",
            f"Plane perpendicular to the canal at the worst compression ({_e(wl) if wl else 'none'}), radiological "
            "convention (patient right on the left, anterior up). Contours: cyan thecal sac, yellow cord, red tumour.",
        )
    )
    parts.append("</div></section>")

    # per-vertebra table
    parts.append(
        "<section><h2>Per vertebra</h2><table><tr><th>Level</th><th>Involved</th><th>Location</th>"
        "<th>Lesion</th><th>Lesion vol.</th><th>Body involved</th><th>Collapse</th><th>Alignment</th>"
        "<th>Posterolateral</th><th>Bilsky</th><th>Imaging SINS</th></tr>"
    )
    per_level = e.get("per_level", {})
    for v in report.get("vertebrae", []):
        m, s, p = v.get("measurements", {}), v.get("sins", {}), v.get("provenance", {})
        ali = s.get("alignment")
        ali_txt = (
            f"{_e(ali)}<br><small>{_fmt(m.get('translation_mm'), ' mm')}, kyph {_fmt(m.get('kyphosis_deg'), '°')}, "
            f"scol {_fmt(m.get('scoliosis_deg'), '°')}</small>"
        )
        sub = v.get("imaging_subscore_range", [None, None])
        parts.append(
            f"<tr class='{'inv' if v.get('involved') else ''}'><td><b>{_e(v.get('level'))}</b></td>"
            f"<td>{'yes' if v.get('involved') else 'no'}</td>"
            f"<td>{_e(s.get('location') or '–')}</td>"
            f"<td>{_e(s.get('lesion') or '–')} {_prov(p.get('lesion')) if v.get('involved') else ''}</td>"
            f"<td>{_fmt(m.get('lesion_volume_ml'), ' ml', 2)}</td>"
            f"<td>{_fmt(m.get('body_involvement_pct'), ' %', 0)}</td>"
            f"<td>{_e(s.get('collapse') or '–')}<br><small>{_fmt(m.get('collapse_pct'), ' %', 0)}</small> {_prov(p.get('collapse'))}</td>"
            f"<td>{ali_txt} {_prov(p.get('alignment'))}</td>"
            f"<td>{_e(s.get('posterolateral') or '–')} {_prov(p.get('posterolateral'))}</td>"
            f"<td>{_e(per_level.get(v.get('level'), '–'))}</td>"
            + (
                f"<td>{_e(sub[0])}{'–' + _e(sub[1]) if sub[1] != sub[0] else ''}</td></tr>"
                if v.get("involved")
                else "<td>–</td></tr>"
            )
        )
    parts.append("</table></section>")

    # Bilsky measurements
    ws = (e.get("measurements") or {}).get("worst_slice")
    ref = (e.get("measurements") or {}).get("reference") or {}
    if ws:
        parts.append(
            "<section><h2>Bilsky: the deciding measurements</h2><table><tr><th>Measurement</th><th>Worst slice</th><th>Reference (tumour-free levels)</th></tr>"
        )
        rows = [
            ("Epidural tumour area", _fmt(ws.get("tumour_area_mm2"), " mm²"), "–"),
            (
                "Dural sac area",
                _fmt(ws.get("sac_area_mm2"), " mm²"),
                _fmt(ref.get("sac_area_mm2"), " mm²"),
            ),
            (
                "Sac solidity",
                _fmt(ws.get("sac_solidity"), "", 3),
                _fmt(ref.get("sac_solidity"), "", 3),
            ),
            (
                "Sac indentation",
                _fmt(ws.get("sac_indentation_mm"), " mm"),
                _fmt(ref.get("sac_indentation_mm"), " mm"),
            ),
            ("Sac deformed", _e(ws.get("sac_deformed")), "–"),
            ("Cord contact", _e(ws.get("cord_contact")), "–"),
            (
                "Cord area",
                _fmt(ws.get("cord_area_mm2"), " mm²"),
                _fmt(ref.get("cord_area_mm2"), " mm²"),
            ),
            (
                "Cord flattening (minor/major)",
                _fmt(ws.get("cord_flattening"), "", 2),
                _fmt(ref.get("cord_flattening"), "", 2),
            ),
            ("Cord compressed", _e(ws.get("cord_compressed")), "–"),
            ("CSF around the cord (ring share)", _fmt(ws.get("csf_ring_fraction"), "", 2), "–"),
        ]
        parts += [f"<tr><td>{a}</td><td>{b}</td><td>{c}</td></tr>" for a, b, c in rows]
        parts.append(
            f"</table><p style='font-size:12px'>Slice at {_e(ws.get('offset_mm'))} mm from the canal centre of {_e(ws.get('level'))}; grade {_e(ws.get('grade'))}.</p></section>"
        )

    # scores
    parts.append(
        "<section><h2>Scores</h2><table><tr><th>System</th><th>Total</th><th>Band / category</th></tr>"
    )
    parts.append(_score_line(sc, "sins", "SINS (index vertebra)", "sins_category"))
    parts.append(
        f"<tr><td>Bilsky ESCC</td><td>{_e(sc.get('escc_grade', grade))}</td><td>{'high grade' if sc.get('escc_high_grade') else 'low grade' if sc.get('escc_high_grade') is False else '–'}</td></tr>"
    )
    parts.append(_score_line(sc, "tokuhashi", "Revised Tokuhashi", "tokuhashi_band"))
    parts.append(_score_line(sc, "tomita", "Tomita", "tomita_goal"))
    parts.append(_score_line(sc, "mbauer", "Modified Bauer", "mbauer_band"))
    parts.append(_score_line(sc, "nesms", "NESMS", None))
    parts.append("</table>")
    expl = [x for x in sc.get("explanation", []) if x.get("system") == "sins"]
    if expl:
        parts.append(
            "<h2 style='margin-top:10px'>SINS breakdown</h2><table><tr><th>Component</th><th>Value</th><th>Points</th><th>Rule</th></tr>"
        )
        for x in expl:
            parts.append(
                f"<tr><td>{_e(x.get('component'))}</td><td>{_e(x.get('value'))}</td><td>{_e(x.get('points'))}</td><td>{_e(x.get('rule'))}</td></tr>"
            )
        parts.append("</table>")
    parts.append("</section>")

    # recommendation
    det = sc.get("recommendation_detail") or {}
    parts.append("<section><h2>Recommendation (decision support)</h2>")
    ranked = det.get("ranked") or []
    if ranked:
        parts.append("<ol>")
        for r in ranked:
            if isinstance(r, dict):
                reasons = r.get("reasons") or []
                parts.append(
                    f"<li><b>{_e(r.get('option') or r.get('recommendation') or r.get('name'))}</b>"
                    + (
                        f"<ul>{''.join(f'<li>{_e(x)}</li>' for x in reasons)}</ul>"
                        if reasons
                        else ""
                    )
                    + "</li>"
                )
            else:
                parts.append(f"<li>{_e(r)}</li>")
        parts.append("</ol>")
    else:
        parts.append(
            "<p>No treatment option can be ranked without the missing clinical inputs (see below).</p>"
        )
    if sc.get("error"):
        msgs = sc.get("error_messages") or {}
        parts.append(
            "<p><b>The scoring engine refused part of the assessment:</b></p><ul>"
            + "".join(
                f"<li><code>{_e(c)}</code> {_e(msgs.get(c, ''))}</li>"
                for c in sc.get("errors", [sc["error"]])
            )
            + "</ul>"
        )
    if det.get("disclaimer"):
        parts.append(f"<p style='font-size:12px'>{_e(det['disclaimer'])}</p>")
    changes = det.get("what_would_change") or []
    if changes:
        parts.append(
            "<p><b>What would change it</b></p><ul>"
            + "".join(f"<li>{_e(c)}</li>" for c in changes[:12])
            + "</ul>"
        )
    parts.append("</section>")

    # missing, flags, provenance
    flags = sc.get("flags") or []
    parts.append("<section><h2>What is missing, flags and provenance</h2><ul>")
    missing = [f for f in flags if f.startswith("INCOMPLETE_")]
    if missing:
        parts.append(
            "<li>Missing clinical inputs (scores shown as ranges): "
            + ", ".join(f"<code>{_e(f)}</code>" for f in missing)
            + "</li>"
        )
    other = [f for f in flags if not f.startswith("INCOMPLETE_")]
    if other:
        parts.append("<li>Flags: " + ", ".join(f"<code>{_e(f)}</code>" for f in other) + "</li>")
    for m in report.get("messages", []):
        parts.append(f"<li>{_e(m)}</li>")
    for v in report.get("vertebrae", []):
        for k, p in v.get("provenance", {}).items():
            if p == "not_assessable" and v.get("involved"):
                parts.append(
                    f"<li>{_e(v['level'])} {_e(k)}: not assessable – {_e(v.get('why', {}).get(k, ''))}</li>"
                )
    entered = report.get("clinical_entered") or []
    if entered:
        parts.append(
            "<li>Entered by the clinician over the image: "
            + ", ".join(f"<code>{_e(x)}</code>" for x in entered)
            + "</li>"
        )
    parts.append(
        "</ul><p style='font-size:12px'>Provenance: "
        f"{_prov('measured')} from the image; {_prov('estimated')} from the image with a less reliable method "
        f"(e.g. Bilsky on CT, a single reference level); {_prov('not_assessable')} with the reason; "
        f"{_prov('entered')} by the user. Tolerances: <code>configs/features.yaml</code>.</p></section>"
    )
    parts.append(
        f"<p style='font-size:11px;color:#666'>report schema {_e(report.get('schema_version'))}. {_e(report.get('notice'))}</p>"
    )
    parts.append("</main></body></html>")
    return "".join(parts)
