//! Keys to commands: the keys of the command table ([`crate::ui::keys::COMMANDS`]) pressed this frame become
//! [`AppCommand`]s. A key counts only with exactly its modifiers (alt+f is not f); while a text field has the
//! keyboard only Esc counts (it leaves the field), and space is left to a focused button.

use super::{ArgusApp, Phase};
use crate::domain::Verdict;
use crate::formats::Format;
use crate::studio::Command;
use crate::ui::command::AppCommand;
use crate::ui::keys::{COMMANDS, KeyCommand};

impl ArgusApp {
    /// Reads the studio's keys (once a database is open) and queues what they ask for.
    pub(super) fn shortcuts(&mut self, ctx: &egui::Context) {
        if !matches!(self.phase, Phase::Ready(_)) {
            return;
        }
        let typing = ctx.text_edit_focused();
        // A widget reached with Tab (a radio button, a button) takes Space and Esc leaves it.
        let focused = ctx.memory(|m| m.focused().is_some());
        let pressed = ctx.input_mut(|i| {
            let mut pressed = Vec::new();
            for entry in COMMANDS {
                let available = match entry.id {
                    KeyCommand::Leave => true,
                    _ if typing => false,
                    KeyCommand::Skip => !focused,
                    _ => true,
                };
                if !available {
                    continue;
                }
                for (n, shortcut) in entry.all_keys().enumerate() {
                    if i.modifiers.matches_exact(shortcut.modifiers) && i.consume_key(shortcut.modifiers, shortcut.key)
                    {
                        pressed.push((entry.id, n));
                    }
                }
            }
            pressed
        });
        let mut leave_field = false;
        for (id, n) in pressed {
            match id {
                KeyCommand::Leave if typing || (focused && !self.panels.show_help) => leave_field = true,
                KeyCommand::Leave if self.panels.show_help => self.commands.push(AppCommand::ToggleHelp),
                KeyCommand::Leave => {}
                KeyCommand::Search => self.panels.list.focus_search = true,
                _ => self.commands.extend(self.key_command(id, n)),
            }
        }
        if leave_field {
            ctx.memory_mut(|m| {
                if let Some(id) = m.focused() {
                    m.surrender_focus(id);
                }
            });
        }
    }

    /// What command `id`'s key number `n` (in [`crate::ui::keys::Entry::all_keys`] order) asks for.
    fn key_command(&self, id: KeyCommand, n: usize) -> Option<AppCommand> {
        let verdict = |verdict: Verdict| {
            // In the Agreement panel's Adjudication tab, f / r / u record the final verdict of the item shown there.
            let agreement = &self.panels.agreement;
            if agreement.takes_verdict_keys() {
                agreement.adjudicate(verdict)
            } else {
                Some(AppCommand::Studio(self.panels.bar.judge_command(verdict)))
            }
        };
        match id {
            KeyCommand::JudgeFake => verdict(Verdict::Fake),
            KeyCommand::JudgeReal => verdict(Verdict::Real),
            KeyCommand::JudgeUnsure => verdict(Verdict::Other),
            KeyCommand::Skip => Some(AppCommand::Studio(Command::Skip)),
            KeyCommand::Next => Some(AppCommand::Studio(Command::Next)),
            KeyCommand::Previous => Some(AppCommand::Studio(Command::Previous)),
            KeyCommand::Undo => Some(AppCommand::Studio(Command::Undo)),
            KeyCommand::WriteRationales => {
                self.workspace().and_then(|ws| ws.selected_id()).map(|id| AppCommand::WriteRationales(vec![id]))
            }
            KeyCommand::ToggleTrainPanel => Some(AppCommand::ToggleTrainPanel),
            KeyCommand::ShowFormat => Format::ALL.get(n).map(|format| AppCommand::SetFormat(*format)),
            KeyCommand::ToggleHelp => Some(AppCommand::ToggleHelp),
            KeyCommand::Search | KeyCommand::Leave => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::formats::Format;
    use crate::ui::keys::{KeyCommand, entry};

    #[test]
    fn the_number_keys_cover_every_format() {
        let keys = entry(KeyCommand::ShowFormat).keys;
        assert_eq!(keys.len(), Format::ALL.len());
        assert_eq!(keys.first().map(|s| s.key), Some(egui::Key::Num1));
    }
}
