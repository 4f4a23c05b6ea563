//! `offkey members add|list|remove|passwd`: team members, on the store directly (on the server host,
//! server running or not).

use std::io::BufRead;

use anyhow::{Context, Result, bail};
use chrono::Utc;

use super::Outcome;
use super::serve::DataArgs;
use crate::server::password;
use crate::store::{NewMember, Role, new_id};

/// `offkey members …`
#[derive(Debug, clap::Subcommand)]
pub enum MembersCommand {
    /// Add a team member.
    Add(AddArgs),
    /// List team members.
    List(ListArgs),
    /// Remove a team member (their sessions end at once).
    Remove(RemoveArgs),
    /// Set a member's password (their sessions end at once).
    Passwd(PasswdArgs),
}

/// Arguments of `members passwd`.
#[derive(Debug, clap::Args)]
pub struct PasswdArgs {
    /// Sign-in email of the member.
    #[arg(long)]
    pub email: String,
    /// Read the new password from the first line of standard input (otherwise prompt).
    #[arg(long)]
    pub password_stdin: bool,
    #[command(flatten)]
    pub data: DataArgs,
}

/// Arguments of `members add`.
#[derive(Debug, clap::Args)]
pub struct AddArgs {
    /// Sign-in email.
    #[arg(long)]
    pub email: String,
    /// Display name.
    #[arg(long)]
    pub name: String,
    /// admin (may manage API keys) or member.
    #[arg(long, value_parser = ["admin", "member"])]
    pub role: String,
    /// Read the password from the first line of standard input (otherwise prompt).
    #[arg(long)]
    pub password_stdin: bool,
    #[command(flatten)]
    pub data: DataArgs,
}

/// Arguments of `members list`.
#[derive(Debug, clap::Args)]
pub struct ListArgs {
    #[command(flatten)]
    pub data: DataArgs,
}

/// Arguments of `members remove`.
#[derive(Debug, clap::Args)]
pub struct RemoveArgs {
    /// Email or id of the member.
    pub member: String,
    #[command(flatten)]
    pub data: DataArgs,
}

/// Read a password: the first line of stdin, or a prompt on the terminal.
pub fn read_password(from_stdin: bool, confirm: bool) -> Result<String> {
    let password = if from_stdin {
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .context("cannot read the password from standard input")?;
        line.trim_end_matches(['\r', '\n']).to_owned()
    } else {
        let p = rpassword::prompt_password("Password: ").context("cannot read the password")?;
        if confirm {
            let again =
                rpassword::prompt_password("Again: ").context("cannot read the password")?;
            if again != p {
                bail!("the passwords differ");
            }
        }
        p
    };
    if password.is_empty() {
        bail!("the password is empty");
    }
    Ok(password)
}

/// Run a members subcommand.
pub fn run(cmd: MembersCommand) -> Result<Outcome> {
    match cmd {
        MembersCommand::Add(a) => {
            let email = a.email.trim().to_owned();
            if !email.contains('@') || email.len() > 200 {
                bail!("{email:?} does not look like an email address");
            }
            let name = a.name.trim().to_owned();
            if name.is_empty() || name.chars().count() > 100 {
                bail!("the name must be 1 to 100 characters");
            }
            let role = Role::parse(&a.role).context("--role must be admin or member")?;
            let password = read_password(a.password_stdin, true)?;
            password::check_policy(&password, &email)?;
            let store = a.data.open()?;
            let hash = password::hash(&password)?;
            let m = store.add_member(
                NewMember {
                    id: new_id("mem_"),
                    email,
                    name,
                    role,
                    password_hash: hash,
                },
                Utc::now(),
            )?;
            println!("added {} {} ({})", m.id, m.email, m.role.as_str());
        }
        MembersCommand::List(a) => {
            let store = a.data.open()?;
            let members = store.list_members()?;
            println!("{:<22} {:<32} {:<24} ROLE", "ID", "EMAIL", "NAME");
            for m in members {
                println!(
                    "{:<22} {:<32} {:<24} {}",
                    m.id,
                    m.email,
                    m.name,
                    m.role.as_str()
                );
            }
        }
        MembersCommand::Remove(a) => {
            let store = a.data.open()?;
            if !store.remove_member(a.member.trim(), Utc::now())? {
                bail!("no member {:?}", a.member);
            }
            println!("removed {}", a.member.trim());
        }
        MembersCommand::Passwd(a) => {
            let email = a.email.trim().to_owned();
            let password = read_password(a.password_stdin, true)?;
            password::check_policy(&password, &email)?;
            let store = a.data.open()?;
            let hash = password::hash(&password)?;
            if !store.set_password(&email, &hash, Utc::now())? {
                bail!("no member with the email {email:?}");
            }
            println!("password changed for {email}; their sessions have ended");
        }
    }
    Ok(Outcome::Clean)
}
