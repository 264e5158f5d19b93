"""The message catalogue of the pages: every text a person reads, in Dutch (first), French and English.

`{name}` marks a value the page fills in. Level labels come from `streams.levels.LABELS`, the same as the API's.
"""

from __future__ import annotations

from streams.levels import LABELS

LANGS = ("nl", "fr", "en")
LOCALES = {"nl": "nl-BE", "fr": "fr-BE", "en": "en-GB"}  # number and date formats per language

MESSAGES: dict[str, dict[str, str]] = {
    "privacy": {"nl": "Alleen tellingen, geen persoonsgegevens",
                "fr": "Uniquement des comptages, aucune donnée personnelle",
                "en": "Counts only, no personal data"},
    "vs_busier": {"nl": "Drukker dan gewoonlijk", "fr": "Plus animé que d'habitude", "en": "Busier than usual"},
    "vs_quieter": {"nl": "Rustiger dan gewoonlijk", "fr": "Plus calme que d'habitude", "en": "Quieter than usual"},
    "vs_usual": {"nl": "Zoals gewoonlijk", "fr": "Comme d'habitude", "en": "As usual"},
    "vs_none": {"nl": "Nog geen vergelijking met gewoonlijk", "fr": "Pas encore de comparaison avec l'habitude",
                "en": "No comparison with usual yet"},
    "updated_at": {"nl": "Bijgewerkt om {time}", "fr": "Mis à jour à {time}", "en": "Updated at {time}"},
    "next_update": {"nl": "Volgende update over {n} min", "fr": "Prochaine mise à jour dans {n} min",
                    "en": "Next update in {n} min"},
    "next_update_soon": {"nl": "Volgende update zo meteen", "fr": "Prochaine mise à jour imminente",
                         "en": "Next update any moment"},
    "stale": {"nl": "Geen recente gegevens: de drukte is nu onbekend",
              "fr": "Pas de données récentes : l'affluence est inconnue",
              "en": "No recent data: busyness is unknown right now"},
    "last_data": {"nl": "Laatste gegevens van {time}", "fr": "Dernières données de {time}",
                  "en": "Last data from {time}"},
    "no_data": {"nl": "Nog geen gegevens", "fr": "Pas encore de données", "en": "No data yet"},
    "suppressed": {"nl": "Te weinig tellingen om cijfers te tonen (privacy)",
                   "fr": "Trop peu de comptages pour afficher des chiffres (vie privée)",
                   "en": "Too few counts to show figures (privacy)"},
    "reconnecting": {"nl": "Verbinding verbroken, opnieuw verbinden…", "fr": "Connexion perdue, reconnexion…",
                     "en": "Connection lost, reconnecting…"},
    "chart_title": {"nl": "Drukte vandaag", "fr": "Affluence aujourd'hui", "en": "Busyness today"},
    "chart_aria": {"nl": "Gebruikelijke drukte per uur vandaag, met de drukte nu om {time}: {level}",
                   "fr": "Affluence habituelle par heure aujourd'hui, avec l'affluence actuelle à {time} : {level}",
                   "en": "Usual busyness per hour today, with busyness now at {time}: {level}"},
    "chart_usual": {"nl": "Gewoonlijk", "fr": "D'habitude", "en": "Usually"},
    "chart_live": {"nl": "Nu", "fr": "Maintenant", "en": "Now"},
    "chart_empty": {"nl": "Nog geen gebruikelijk verloop voor vandaag",
                    "fr": "Pas encore de profil habituel pour aujourd'hui",
                    "en": "No usual curve for today yet"},
    "index": {"nl": "Index {n}", "fr": "Indice {n}", "en": "Index {n}"},
    "index_help": {"nl": "100 = gewoonlijk op dit uur", "fr": "100 = l'habitude à cette heure",
                   "en": "100 = usual for this hour"},
    "usual_band": {"nl": "Gewoonlijk {low}–{high}", "fr": "D'habitude {low}–{high}", "en": "Usually {low}–{high}"},
    "visitors": {"nl": "{min}–{max} passanten in {n} min", "fr": "{min}–{max} passants en {n} min",
                 "en": "{min}–{max} passers-by in {n} min"},
    "merchant_title": {"nl": "Drukte voor handelaars", "fr": "Affluence pour les commerçants",
                       "en": "Busyness for merchants"},
    "now_vs_usual": {"nl": "Nu tegenover gewoonlijk", "fr": "Maintenant par rapport à l'habitude",
                     "en": "Now compared with usual"},
    "next_hours": {"nl": "Komende 2 uur", "fr": "Les 2 prochaines heures", "en": "Next 2 hours"},
    "forecast_none": {"nl": "Nog geen voorspelling", "fr": "Pas encore de prévision", "en": "No forecast yet"},
    "peak_hours": {"nl": "Piekuren vandaag", "fr": "Heures de pointe aujourd'hui", "en": "Peak hours today"},
    "quiet_hours": {"nl": "Rustige uren vandaag", "fr": "Heures calmes aujourd'hui", "en": "Quiet hours today"},
    "hours_none": {"nl": "Nog niet bekend", "fr": "Pas encore connu", "en": "Not known yet"},
    "last_week": {"nl": "Zelfde dag vorige week", "fr": "Même jour la semaine passée",
                  "en": "Same day last week"},
    "last_week_now": {"nl": "Om {time}", "fr": "À {time}", "en": "At {time}"},
    "last_week_peak": {"nl": "Drukste moment: {time}", "fr": "Moment le plus animé : {time}",
                       "en": "Busiest moment: {time}"},
    "last_week_none": {"nl": "Geen gegevens van vorige week", "fr": "Pas de données de la semaine passée",
                       "en": "No data from last week"},
    "spending": {"nl": "Bestedingen per sector", "fr": "Dépenses par secteur", "en": "Spending by sector"},
    "spending_none": {"nl": "Nog geen bestedingsgegevens", "fr": "Pas encore de données de dépenses",
                      "en": "No spending data yet"},
    "spending_all": {"nl": "Alle sectoren", "fr": "Tous les secteurs", "en": "All sectors"},
    "spend_per_visitor": {"nl": "Besteding per bezoeker", "fr": "Dépense par visiteur",
                          "en": "Spend per visitor"},
    "sector": {"nl": "Sector", "fr": "Secteur", "en": "Sector"},
    "vs_header": {"nl": "Tegenover gewoonlijk", "fr": "Par rapport à l'habitude", "en": "Compared with usual"},
    "spend_busier": {"nl": "Hoger dan gewoonlijk", "fr": "Plus élevées que d'habitude", "en": "Higher than usual"},
    "spend_quieter": {"nl": "Lager dan gewoonlijk", "fr": "Plus basses que d'habitude", "en": "Lower than usual"},
    "spend_usual": {"nl": "Zoals gewoonlijk", "fr": "Comme d'habitude", "en": "As usual"},
    "spending_index": {"nl": "Index bestedingen", "fr": "Indice des dépenses", "en": "Spending index"},
    "spending_help": {"nl": "Index 100 = gewoonlijk voor dit uur", "fr": "Indice 100 = l'habitude à cette heure",
                      "en": "Index 100 = usual for this hour"},
    "spending_window": {"nl": "Periode {start}–{end}", "fr": "Période {start}–{end}", "en": "Period {start}–{end}"},
    "spending_hidden": {"nl": "verborgen (privacy)", "fr": "masqué (vie privée)", "en": "hidden (privacy)"},
    "break": {"nl": "trendbreuk", "fr": "rupture de tendance", "en": "structural break"},
    "dashboard_title": {"nl": "Drukte in {city}", "fr": "Affluence à {city}", "en": "Busyness in {city}"},
    "zones": {"nl": "Alle zones", "fr": "Toutes les zones", "en": "All zones"},
    "zone": {"nl": "Zone", "fr": "Zone", "en": "Zone"},
    "level": {"nl": "Niveau", "fr": "Niveau", "en": "Level"},
    "trend": {"nl": "Laatste 3 uur", "fr": "Dernières 3 heures", "en": "Last 3 hours"},
    "trend_aria": {"nl": "Verloop van {zone} de laatste 3 uur", "fr": "Évolution de {zone} sur 3 heures",
                   "en": "{zone} over the last 3 hours"},
    "coverage": {"nl": "Dekking {pct}", "fr": "Couverture {pct}", "en": "Coverage {pct}"},
    "sensors": {"nl": "Sensoren", "fr": "Capteurs", "en": "Sensors"},
    "sensors_reporting": {"nl": "{n} van {m} sensoren", "fr": "{n} capteurs sur {m}", "en": "{n} of {m} sensors"},
    "health": {"nl": "Sensorgezondheid", "fr": "État des capteurs", "en": "Sensor health"},
    "age": {"nl": "Leeftijd gegevens", "fr": "Âge des données", "en": "Data age"},
    "age_value": {"nl": "{n} min", "fr": "{n} min", "en": "{n} min"},
    "health_ok": {"nl": "in orde", "fr": "en ordre", "en": "fine"},
    "health_partial": {"nl": "gedeeltelijk", "fr": "partiel", "en": "partial"},
    "health_down": {"nl": "geen gegevens", "fr": "pas de données", "en": "no data"},
    "status": {"nl": "Status", "fr": "État", "en": "Status"},
    "map": {"nl": "Schema van de zones", "fr": "Schéma des zones", "en": "Map of the zones"},
    "map_aria": {"nl": "Schema van de winkelzones van {city} met hun drukte",
                 "fr": "Schéma des zones commerçantes de {city} avec leur affluence",
                 "en": "Map of the shopping zones of {city} with their busyness"},
    "open_merchant": {"nl": "Details voor handelaars", "fr": "Détails pour les commerçants",
                      "en": "Details for merchants"},
    "open_widget": {"nl": "Scherm", "fr": "Écran", "en": "Screen"},
    "languages": {"nl": "Taal", "fr": "Langue", "en": "Language"},
    "source": {"nl": "Bron: Drukte, open source", "fr": "Source : Drukte, open source",
               "en": "Source: Drukte, open source"},
    "reason_below_k": {"nl": "te weinig tellingen", "fr": "trop peu de comptages", "en": "too few counts"},
    "reason_few_sensors": {"nl": "te weinig sensoren", "fr": "trop peu de capteurs", "en": "too few sensors"},
    "reason_few_merchants": {"nl": "te weinig handelaars", "fr": "trop peu de commerçants",
                             "en": "too few merchants"},
    "reason_few_cards": {"nl": "te weinig kaarten", "fr": "trop peu de cartes", "en": "too few cards"},
    "reason_dominant_merchants": {"nl": "te afhankelijk van enkele handelaars",
                                  "fr": "trop dépendant de quelques commerçants",
                                  "en": "too dependent on a few merchants"},
    "reason_complement": {"nl": "verborgen om een andere sector te beschermen",
                          "fr": "masqué pour protéger un autre secteur", "en": "hidden to protect another sector"},
    "reason_no_data": {"nl": "nog geen gegevens", "fr": "pas encore de données", "en": "no data yet"},
    "reason_other": {"nl": "verborgen", "fr": "masqué", "en": "hidden"},
}

for _key, _labels in LABELS.items():
    MESSAGES["level_" + _key] = dict(_labels)


def messages(lang: str) -> dict[str, str]:
    """Every message in one language (`lang` must be one of LANGS)."""
    return {key: texts[lang] for key, texts in MESSAGES.items()}


def text(key: str, lang: str, **values: object) -> str:
    """One message with its `{name}` values filled in."""
    return MESSAGES[key][lang].format(**values)
