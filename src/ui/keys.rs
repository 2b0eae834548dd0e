//! The one table of the studio's keyboard commands: what each is called, what it does and which keys press it.
//!
//! The key handling (`app/shortcuts.rs`), the `?` sheet ([`super::help`]), the menus and buttons that name a
//! shortcut ("Train… (t)") and the README's key table (checked by a test) all read [`COMMANDS`], so a key is written
//! once. This module draws nothing and knows nothing of the app's state.

use egui::{Key, Modifiers};

/// A command that has a keyboard shortcut.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum KeyCommand {
    JudgeFake,
    JudgeReal,
    JudgeUnsure,
    Skip,
    Next,
    Previous,
    Undo,
    Search,
    WriteRationales,
    ToggleTrainPanel,
    /// Show the rationales in an explanation format: the number keys, in the order of
    /// [`crate::formats::Format::ALL`].
    ShowFormat,
    /// Leave a text field or a focused control; close the `?` sheet.
    Leave,
    ToggleHelp,
}

/// One key with the modifiers that must be held (exactly) with it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shortcut {
    pub modifiers: Modifiers,
    pub key: Key,
}

impl Shortcut {
    /// The key alone.
    pub const fn key(key: Key) -> Self {
        Self { modifiers: Modifiers::NONE, key }
    }

    /// Ctrl (cmd on a Mac) and the key.
    pub const fn command(key: Key) -> Self {
        Self { modifiers: Modifiers::COMMAND, key }
    }

    /// Shift and the key.
    pub const fn shift(key: Key) -> Self {
        Self { modifiers: Modifiers::SHIFT, key }
    }

    /// How the sheet, the menus and the README write it: `f`, `space`, `ctrl+z`, `↓`.
    pub fn text(&self) -> String {
        let key = match self.key {
            Key::Space => "space".to_owned(),
            Key::Escape => "Esc".to_owned(),
            Key::ArrowDown => "↓".to_owned(),
            Key::ArrowUp => "↑".to_owned(),
            key => key.symbol_or_name().to_lowercase(),
        };
        if self.modifiers.command {
            format!("ctrl+{key}")
        } else if self.modifiers.shift {
            format!("shift+{key}")
        } else {
            key
        }
    }
}

/// A row of the command table.
#[derive(Clone, Copy, Debug)]
pub struct Entry {
    pub id: KeyCommand,
    /// Short name, as on a button or in a menu ("Fake", "Train…").
    pub label: &'static str,
    /// What it does, as the `?` sheet says it.
    pub does: &'static str,
    /// The keys that press it, shown in this order (the first one in button labels).
    pub keys: &'static [Shortcut],
    /// Further keys that press it but are not shown (the same key as typed on other keyboard layouts).
    pub aliases: &'static [Shortcut],
}

impl Entry {
    /// The keys as the sheet writes them: `j / ↓`, and `1 … 8` for a run of number keys.
    pub fn keys_text(&self) -> String {
        match self.keys {
            [first, .., last] if self.id == KeyCommand::ShowFormat => {
                format!("{} … {}", first.text(), last.text())
            }
            keys => keys.iter().map(Shortcut::text).collect::<Vec<_>>().join(" / "),
        }
    }

    /// Every key that presses it, the shown ones first.
    pub fn all_keys(&self) -> impl Iterator<Item = &Shortcut> {
        self.keys.iter().chain(self.aliases)
    }
}

/// The studio's keyboard commands, in the order the `?` sheet lists them.
pub const COMMANDS: &[Entry] = &[
    Entry {
        id: KeyCommand::JudgeFake,
        label: "Fake",
        does: "judge the item fake, go to the next",
        keys: &[Shortcut::key(Key::F)],
        aliases: &[],
    },
    Entry {
        id: KeyCommand::JudgeReal,
        label: "Real",
        does: "judge the item real, go to the next",
        keys: &[Shortcut::key(Key::R)],
        aliases: &[],
    },
    Entry {
        id: KeyCommand::JudgeUnsure,
        label: "Unsure",
        does: "unsure, go to the next",
        keys: &[Shortcut::key(Key::U)],
        aliases: &[],
    },
    Entry {
        id: KeyCommand::Skip,
        label: "Skip",
        does: "skip: next item without a verdict",
        keys: &[Shortcut::key(Key::Space)],
        aliases: &[],
    },
    Entry {
        id: KeyCommand::Next,
        label: "Next item",
        does: "next item",
        keys: &[Shortcut::key(Key::J), Shortcut::key(Key::ArrowDown)],
        aliases: &[],
    },
    Entry {
        id: KeyCommand::Previous,
        label: "Previous item",
        does: "previous item",
        keys: &[Shortcut::key(Key::K), Shortcut::key(Key::ArrowUp)],
        aliases: &[],
    },
    Entry {
        id: KeyCommand::Undo,
        label: "Undo",
        does: "undo the last judgement (kept in the database as retracted)",
        keys: &[Shortcut::command(Key::Z)],
        aliases: &[],
    },
    Entry {
        id: KeyCommand::Search,
        label: "Search",
        does: "search the item list",
        keys: &[Shortcut::key(Key::Slash)],
        aliases: &[],
    },
    Entry {
        id: KeyCommand::WriteRationales,
        label: "Write rationales for this item",
        does: "write rationales for this item (every perspective, each with its verdict)",
        keys: &[Shortcut::key(Key::W)],
        aliases: &[],
    },
    Entry {
        id: KeyCommand::ToggleTrainPanel,
        label: "Train…",
        does: "show or hide the Train panel (retrain the guidance model, compare versions)",
        keys: &[Shortcut::key(Key::T)],
        aliases: &[],
    },
    Entry {
        id: KeyCommand::ShowFormat,
        label: "Explanation format",
        does: "explanation format: free text, annotated report, markup and mask, procedural, subquestions, decision \
               tree, claim card, side by side",
        keys: &[
            Shortcut::key(Key::Num1),
            Shortcut::key(Key::Num2),
            Shortcut::key(Key::Num3),
            Shortcut::key(Key::Num4),
            Shortcut::key(Key::Num5),
            Shortcut::key(Key::Num6),
            Shortcut::key(Key::Num7),
            Shortcut::key(Key::Num8),
        ],
        aliases: &[],
    },
    Entry {
        id: KeyCommand::Leave,
        label: "Leave",
        does: "leave a text field or focused control / close this sheet",
        keys: &[Shortcut::key(Key::Escape)],
        aliases: &[],
    },
    Entry {
        id: KeyCommand::ToggleHelp,
        label: "Keyboard shortcuts",
        does: "show or hide this sheet",
        keys: &[Shortcut::key(Key::Questionmark)],
        aliases: &[Shortcut::shift(Key::Questionmark), Shortcut::shift(Key::Slash)],
    },
];

/// The table's row for `id`.
pub fn entry(id: KeyCommand) -> &'static Entry {
    COMMANDS.iter().find(|e| e.id == id).expect("every KeyCommand has a row in COMMANDS")
}

/// The first key of `id`, as written: `t`.
pub fn key_text(id: KeyCommand) -> String {
    entry(id).keys.first().map(Shortcut::text).unwrap_or_default()
}

/// `id`'s label with its first key, as a menu or button shows it: "Train… (t)".
pub fn labelled(id: KeyCommand) -> String {
    format!("{} ({})", entry(id).label, key_text(id))
}

/// `text` followed by `id`'s first key: "show or hide the Train panel (t)".
pub fn with_key(text: &str, id: KeyCommand) -> String {
    format!("{text} ({})", key_text(id))
}

/// Every key of the table as written (the shown ones, not the aliases): what the README's key table must list.
pub fn shown_key_texts() -> Vec<String> {
    COMMANDS.iter().flat_map(|e| e.keys.iter().map(Shortcut::text)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_command_has_one_row_and_keys_are_not_shared() {
        let ids = [
            KeyCommand::JudgeFake,
            KeyCommand::JudgeReal,
            KeyCommand::JudgeUnsure,
            KeyCommand::Skip,
            KeyCommand::Next,
            KeyCommand::Previous,
            KeyCommand::Undo,
            KeyCommand::Search,
            KeyCommand::WriteRationales,
            KeyCommand::ToggleTrainPanel,
            KeyCommand::ShowFormat,
            KeyCommand::Leave,
            KeyCommand::ToggleHelp,
        ];
        for id in ids {
            assert_eq!(COMMANDS.iter().filter(|e| e.id == id).count(), 1, "{id:?}");
        }
        let all: Vec<_> = COMMANDS.iter().flat_map(|e| e.all_keys()).collect();
        for (i, a) in all.iter().enumerate() {
            assert!(!all[i + 1..].contains(a), "{a:?} presses two commands");
        }
    }

    #[test]
    fn keys_are_written_as_the_sheet_writes_them() {
        assert_eq!(entry(KeyCommand::Next).keys_text(), "j / ↓");
        assert_eq!(entry(KeyCommand::Undo).keys_text(), "ctrl+z");
        assert_eq!(entry(KeyCommand::ShowFormat).keys_text(), "1 … 8");
        assert_eq!(entry(KeyCommand::ToggleHelp).keys_text(), "?");
        assert_eq!(entry(KeyCommand::Skip).keys_text(), "space");
        assert_eq!(labelled(KeyCommand::ToggleTrainPanel), "Train… (t)");
        assert_eq!(labelled(KeyCommand::JudgeFake), "Fake (f)");
    }
}
