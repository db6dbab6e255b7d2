//! The words of the hosted pages in every supported language. `{email}` (the masked address) and
//! `{project}` (the project name) are filled in by [`fill`], HTML-escaped.
//!
//! Pages for a link that resolves to no contact (404), and the 429 and 5xx pages, are in English:
//! without a contact there is no language to choose.

use plunk_domain::language::Language;
use plunk_domain::list_unsubscribe::escape_html;

/// Everything a contact's page says.
pub struct Strings {
    pub unsubscribe_heading: &'static str,
    pub unsubscribe_prompt: &'static str,
    pub unsubscribe_button: &'static str,
    pub unsubscribed_heading: &'static str,
    pub unsubscribed_message: &'static str,
    pub subscribe_heading: &'static str,
    pub subscribe_prompt: &'static str,
    pub subscribe_button: &'static str,
    pub subscribed_heading: &'static str,
    pub subscribed_message: &'static str,
    pub manage_heading: &'static str,
    pub state_subscribed: &'static str,
    pub state_unsubscribed: &'static str,
    pub saved: &'static str,
    pub invalid_heading: &'static str,
    pub invalid_message: &'static str,
    pub manage_link: &'static str,
}

/// The text of `template` as HTML, with `{email}` and `{project}` replaced by the escaped values.
pub fn fill(template: &str, email: &str, project: &str) -> String {
    // Escaping leaves the placeholders intact (no special characters in them).
    escape_html(template)
        .replace(
            "{email}",
            &format!("<strong>{}</strong>", escape_html(email)),
        )
        .replace("{project}", &escape_html(project))
}

/// The strings of `language`.
pub fn strings(language: Language) -> &'static Strings {
    match language {
        Language::En => &EN,
        Language::De => &DE,
        Language::Fr => &FR,
        Language::Es => &ES,
        Language::Nl => &NL,
        Language::Pt => &PT,
        Language::It => &IT,
    }
}

/// English-only pages: an invalid link, too many requests, a failure.
pub mod fixed {
    /// Heading of the 404 page (spec feedback-and-unsubscribe.md §4).
    pub const NOT_FOUND_HEADING: &str = "This link is no longer valid";
    /// Text of the 404 page.
    pub const NOT_FOUND_MESSAGE: &str =
        "The link may be incomplete, or the address it was sent to is no longer on file.";
    /// Heading of the 429 page.
    pub const TOO_MANY_HEADING: &str = "Too many requests";
    /// Text of the 429 page.
    pub const TOO_MANY_MESSAGE: &str = "Please wait a minute, then try again.";
    /// Heading of the 5xx pages.
    pub const FAILED_HEADING: &str = "Something went wrong";
    /// Text of the 5xx pages.
    pub const FAILED_MESSAGE: &str =
        "Your request could not be completed. Please try again in a few minutes.";
}

static EN: Strings = Strings {
    unsubscribe_heading: "Unsubscribe",
    unsubscribe_prompt: "Stop receiving marketing emails from {project} at {email}?",
    unsubscribe_button: "Unsubscribe",
    unsubscribed_heading: "You have been unsubscribed.",
    unsubscribed_message: "{email} will no longer receive marketing emails from {project}.",
    subscribe_heading: "Subscribe",
    subscribe_prompt: "Receive marketing emails from {project} at {email}?",
    subscribe_button: "Subscribe",
    subscribed_heading: "You are subscribed.",
    subscribed_message: "{email} will receive marketing emails from {project}.",
    manage_heading: "Email preferences",
    state_subscribed: "{email} is subscribed to marketing emails from {project}.",
    state_unsubscribed: "{email} is unsubscribed from marketing emails from {project}.",
    saved: "Your preferences have been saved.",
    invalid_heading: "Please choose an option",
    invalid_message: "Choose whether to subscribe or unsubscribe, then try again.",
    manage_link: "Manage preferences",
};

static DE: Strings = Strings {
    unsubscribe_heading: "Abmelden",
    unsubscribe_prompt: "Keine Marketing-E-Mails von {project} mehr an {email} erhalten?",
    unsubscribe_button: "Abmelden",
    unsubscribed_heading: "Sie wurden abgemeldet.",
    unsubscribed_message: "{email} erhält keine Marketing-E-Mails von {project} mehr.",
    subscribe_heading: "Anmelden",
    subscribe_prompt: "Marketing-E-Mails von {project} an {email} erhalten?",
    subscribe_button: "Anmelden",
    subscribed_heading: "Sie sind angemeldet.",
    subscribed_message: "{email} erhält Marketing-E-Mails von {project}.",
    manage_heading: "E-Mail-Einstellungen",
    state_subscribed: "{email} ist für Marketing-E-Mails von {project} angemeldet.",
    state_unsubscribed: "{email} ist von Marketing-E-Mails von {project} abgemeldet.",
    saved: "Ihre Einstellungen wurden gespeichert.",
    invalid_heading: "Bitte wählen Sie eine Option",
    invalid_message:
        "Wählen Sie, ob Sie sich anmelden oder abmelden möchten, und versuchen Sie es erneut.",
    manage_link: "Einstellungen verwalten",
};

static FR: Strings = Strings {
    unsubscribe_heading: "Se désabonner",
    unsubscribe_prompt: "Ne plus recevoir les e-mails marketing de {project} à l'adresse {email} ?",
    unsubscribe_button: "Se désabonner",
    unsubscribed_heading: "Votre désabonnement est confirmé.",
    unsubscribed_message: "{email} ne recevra plus d'e-mails marketing de {project}.",
    subscribe_heading: "S'abonner",
    subscribe_prompt: "Recevoir les e-mails marketing de {project} à l'adresse {email} ?",
    subscribe_button: "S'abonner",
    subscribed_heading: "Votre abonnement est confirmé.",
    subscribed_message: "{email} recevra les e-mails marketing de {project}.",
    manage_heading: "Préférences e-mail",
    state_subscribed: "{email} est abonné aux e-mails marketing de {project}.",
    state_unsubscribed: "{email} est désabonné des e-mails marketing de {project}.",
    saved: "Vos préférences ont été enregistrées.",
    invalid_heading: "Veuillez choisir une option",
    invalid_message: "Choisissez de vous abonner ou de vous désabonner, puis réessayez.",
    manage_link: "Gérer mes préférences",
};

static ES: Strings = Strings {
    unsubscribe_heading: "Darse de baja",
    unsubscribe_prompt: "¿Dejar de recibir correos de marketing de {project} en {email}?",
    unsubscribe_button: "Darse de baja",
    unsubscribed_heading: "Te has dado de baja.",
    unsubscribed_message: "{email} ya no recibirá correos de marketing de {project}.",
    subscribe_heading: "Suscribirse",
    subscribe_prompt: "¿Recibir correos de marketing de {project} en {email}?",
    subscribe_button: "Suscribirse",
    subscribed_heading: "Estás suscrito.",
    subscribed_message: "{email} recibirá correos de marketing de {project}.",
    manage_heading: "Preferencias de correo",
    state_subscribed: "{email} está suscrito a los correos de marketing de {project}.",
    state_unsubscribed: "{email} no está suscrito a los correos de marketing de {project}.",
    saved: "Tus preferencias se han guardado.",
    invalid_heading: "Elige una opción",
    invalid_message: "Elige si quieres suscribirte o darte de baja e inténtalo de nuevo.",
    manage_link: "Gestionar preferencias",
};

static NL: Strings = Strings {
    unsubscribe_heading: "Afmelden",
    unsubscribe_prompt: "Geen marketingmails van {project} meer ontvangen op {email}?",
    unsubscribe_button: "Afmelden",
    unsubscribed_heading: "U bent afgemeld.",
    unsubscribed_message: "{email} ontvangt geen marketingmails van {project} meer.",
    subscribe_heading: "Aanmelden",
    subscribe_prompt: "Marketingmails van {project} ontvangen op {email}?",
    subscribe_button: "Aanmelden",
    subscribed_heading: "U bent aangemeld.",
    subscribed_message: "{email} ontvangt marketingmails van {project}.",
    manage_heading: "E-mailvoorkeuren",
    state_subscribed: "{email} is aangemeld voor marketingmails van {project}.",
    state_unsubscribed: "{email} is afgemeld voor marketingmails van {project}.",
    saved: "Uw voorkeuren zijn opgeslagen.",
    invalid_heading: "Kies een optie",
    invalid_message: "Kies of u zich wilt aanmelden of afmelden en probeer het opnieuw.",
    manage_link: "Voorkeuren beheren",
};

static PT: Strings = Strings {
    unsubscribe_heading: "Cancelar subscrição",
    unsubscribe_prompt: "Deixar de receber e-mails de marketing de {project} em {email}?",
    unsubscribe_button: "Cancelar subscrição",
    unsubscribed_heading: "A sua subscrição foi cancelada.",
    unsubscribed_message: "{email} deixará de receber e-mails de marketing de {project}.",
    subscribe_heading: "Subscrever",
    subscribe_prompt: "Receber e-mails de marketing de {project} em {email}?",
    subscribe_button: "Subscrever",
    subscribed_heading: "A sua subscrição está ativa.",
    subscribed_message: "{email} receberá e-mails de marketing de {project}.",
    manage_heading: "Preferências de e-mail",
    state_subscribed: "{email} está subscrito aos e-mails de marketing de {project}.",
    state_unsubscribed: "{email} não está subscrito aos e-mails de marketing de {project}.",
    saved: "As suas preferências foram guardadas.",
    invalid_heading: "Escolha uma opção",
    invalid_message: "Escolha se pretende subscrever ou cancelar a subscrição e tente novamente.",
    manage_link: "Gerir preferências",
};

static IT: Strings = Strings {
    unsubscribe_heading: "Annulla l'iscrizione",
    unsubscribe_prompt: "Non ricevere più email di marketing da {project} all'indirizzo {email}?",
    unsubscribe_button: "Annulla l'iscrizione",
    unsubscribed_heading: "La tua iscrizione è stata annullata.",
    unsubscribed_message: "{email} non riceverà più email di marketing da {project}.",
    subscribe_heading: "Iscriviti",
    subscribe_prompt: "Ricevere email di marketing da {project} all'indirizzo {email}?",
    subscribe_button: "Iscriviti",
    subscribed_heading: "Sei iscritto.",
    subscribed_message: "{email} riceverà email di marketing da {project}.",
    manage_heading: "Preferenze email",
    state_subscribed: "{email} è iscritto alle email di marketing di {project}.",
    state_unsubscribed: "{email} non è iscritto alle email di marketing di {project}.",
    saved: "Le tue preferenze sono state salvate.",
    invalid_heading: "Scegli un'opzione",
    invalid_message: "Scegli se iscriverti o annullare l'iscrizione, poi riprova.",
    manage_link: "Gestisci le preferenze",
};

#[cfg(test)]
mod tests {
    use super::*;

    fn all(s: &Strings) -> [&'static str; 17] {
        [
            s.unsubscribe_heading,
            s.unsubscribe_prompt,
            s.unsubscribe_button,
            s.unsubscribed_heading,
            s.unsubscribed_message,
            s.subscribe_heading,
            s.subscribe_prompt,
            s.subscribe_button,
            s.subscribed_heading,
            s.subscribed_message,
            s.manage_heading,
            s.state_subscribed,
            s.state_unsubscribed,
            s.saved,
            s.invalid_heading,
            s.invalid_message,
            s.manage_link,
        ]
    }

    #[test]
    fn every_language_fills_the_same_placeholders_as_english() {
        let en = all(strings(Language::En));
        for language in Language::ALL {
            for (i, text) in all(strings(language)).into_iter().enumerate() {
                assert!(!text.trim().is_empty(), "{language:?} #{i}");
                for placeholder in ["{email}", "{project}"] {
                    assert_eq!(
                        text.contains(placeholder),
                        en[i].contains(placeholder),
                        "{language:?} #{i} {placeholder}"
                    );
                }
            }
        }
        assert_eq!(strings(Language::De).unsubscribe_button, "Abmelden");
    }

    #[test]
    fn filled_values_are_escaped() {
        assert_eq!(
            fill("{email} from {project}'s list", "a***@b.co", "<Acme & Co>"),
            "<strong>a***@b.co</strong> from &lt;Acme &amp; Co&gt;&#39;s list"
        );
    }
}
